"""idempotency responses as order-preserving JSON

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 17:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite stores JSON as text already; only PostgreSQL's JSONB reorders keys.
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "idempotency_keys", "response_body",
            type_=sa.JSON(), existing_type=postgresql.JSONB(),
            postgresql_using="response_body::json",
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "idempotency_keys", "response_body",
            type_=postgresql.JSONB(), existing_type=sa.JSON(),
            postgresql_using="response_body::jsonb",
        )
