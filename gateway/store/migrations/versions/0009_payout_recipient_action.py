"""payouts: what the recipient must do at the provider (WeChat Pay user confirmation)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 22:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'recipient_action',
                sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_column('recipient_action')
