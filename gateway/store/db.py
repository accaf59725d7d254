"""The Database handle: one engine per process, short transactions, SQLite made safe.

SQLite runs in WAL mode with foreign keys on. Write transactions start with `BEGIN IMMEDIATE`
so two writers queue on the busy timeout instead of failing on lock upgrade; read transactions
stay deferred so they never block. PostgreSQL runs READ COMMITTED with a statement timeout;
code that needs serialization takes row locks explicitly (`with_for_update`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from gateway.settings import Settings


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        hide_parameters=True,  # errors must not carry row values into logs
        pool_size=10,
        max_overflow=20,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own handling is broken).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=30000",
            "PRAGMA synchronous=NORMAL",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _postgres_engine(url: str, settings: Settings) -> Engine:
    options = f"-c statement_timeout={settings.database_statement_timeout_ms}"
    return create_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={
            "options": options,
            "connect_timeout": 5,
            "application_name": "wallet-gateway",
        },
    )


def build_engine(settings: Settings) -> Engine:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and ":memory:" not in url:
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_engine(url)
    if url.startswith("postgresql"):
        return _postgres_engine(url, settings)
    raise ValueError("GATEWAY_DATABASE_URL must be a sqlite:// or postgresql+psycopg:// URL")


class Database:
    """Engine + session factories. `transaction()` for writes, `read()` for reads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._write = sessionmaker(engine, expire_on_commit=False)
        self._read = sessionmaker(
            engine.execution_options(sqlite_begin="DEFERRED"), expire_on_commit=False
        )
        # A single-statement read needs no transaction of its own. On PostgreSQL (READ
        # COMMITTED: every statement has its own snapshot anyway) it runs in autocommit, which
        # spares the BEGIN and ROLLBACK round trips; SQLite reads stay deferred transactions.
        self._single_read_engine = engine.execution_options(
            **({"isolation_level": "AUTOCOMMIT"} if self.dialect == "postgresql" else {}),
            sqlite_begin="DEFERRED",
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(build_engine(settings))

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction: commits on success, rolls back on any exception."""
        with self._write.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction that never takes SQLite's write lock."""
        with self._read() as session:  # closing the session rolls the transaction back
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A Core connection (no ORM session) for ONE read-only statement on a hot path."""
        with self._single_read_engine.connect() as connection:  # closing it rolls back
            yield connection

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
