"""The migrations create exactly the schema the models describe, on this backend."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gateway.store import migrate
from gateway.store.tables import Base


def test_models_and_migrations_do_not_drift(container) -> None:  # type: ignore[no-untyped-def]
    with container.db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_database_is_at_head(container) -> None:  # type: ignore[no-untyped-def]
    assert migrate.status(container.db.engine).up_to_date
