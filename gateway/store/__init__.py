"""Persistence: SQLAlchemy tables, the Database handle, repositories, migrations, outbox."""
