"""Idempotency-Key records (IETF draft "The Idempotency-Key HTTP Header Field").

The first request with a key inserts its record with `INSERT ... ON CONFLICT DO NOTHING`, so
exactly one of any number of concurrent requests wins, on SQLite and PostgreSQL alike. Others:
- different payload (fingerprint) or operation under the same key -> 422;
- key completed -> the stored response is replayed;
- key still in flight -> wait up to `wait_seconds` for it to complete, then replay; else 409;
- key in flight but its lock expired (the process died) -> taken over: if a resource was
  already attached the caller resumes it instead of starting again, so money never moves twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gateway.domain.clock import Clock
from gateway.domain.errors import Conflict, Unprocessable
from gateway.store.db import Database
from gateway.store.tables import IdempotencyRecord


@dataclass
class IdempotencyRequest:
    partner_id: str
    key: str
    operation: str
    fingerprint: str
    # Set by `complete()`: a use case that stored its response in its own outcome transaction
    # spares `idempotent()` a second write.
    response_stored: bool = field(default=False, compare=False, repr=False)


@dataclass(frozen=True)
class Claim:
    """What `begin` decided: run the request (`new`), `replay` a stored response, or `resume`."""

    kind: Literal["new", "replay", "resume"]
    status: int | None = None
    body: dict[str, Any] | None = None
    resource_type: str | None = None
    resource_id: str | None = None


class IdempotencyKeys:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        ttl: timedelta,
        lock: timedelta,
        wait_seconds: float,
    ) -> None:
        self.db = db
        self.clock = clock
        self.ttl = ttl
        self.lock = lock
        self.wait_seconds = wait_seconds

    def begin(self, request: IdempotencyRequest) -> Claim:
        deadline = time.monotonic() + self.wait_seconds
        pause = 0.005
        while True:
            claim = self._try_claim(request)
            if claim is not None:
                return claim
            if time.monotonic() >= deadline:
                raise Conflict(
                    "A request with this Idempotency-Key is still being processed; retry later",
                    code="idempotency_key_in_flight",
                    headers={"Retry-After": "1"},
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _try_claim(self, request: IdempotencyRequest) -> Claim | None:
        now = self.clock.now()
        with self.db.transaction() as session:
            values = {
                "partner_id": request.partner_id,
                "key": request.key,
                "operation": request.operation,
                "fingerprint": request.fingerprint,
                "state": "in_flight",
                "locked_until": now + self.lock,
                "created_at": now,
                "expires_at": now + self.ttl,
            }
            insert = pg_insert if self.db.is_postgres else sqlite_insert
            statement = (
                insert(IdempotencyRecord)
                .values(**values)
                .on_conflict_do_nothing()
                .returning(IdempotencyRecord.key)
            )
            if session.execute(statement).scalar_one_or_none() is not None:
                return Claim("new")
            record = session.execute(
                select(IdempotencyRecord)
                .where(
                    IdempotencyRecord.partner_id == request.partner_id,
                    IdempotencyRecord.key == request.key,
                )
                .with_for_update()
            ).scalar_one()
            if record.expires_at <= now:  # an expired key starts afresh
                for name, value in values.items():
                    setattr(record, name, value)
                record.resource_type = record.resource_id = None
                record.response_status = None
                record.response_body = None
                return Claim("new")
            if record.operation != request.operation or record.fingerprint != request.fingerprint:
                raise Unprocessable(
                    "This Idempotency-Key was already used with a different request",
                    code="idempotency_key_reused",
                )
            if record.state == "completed":
                return Claim("replay", record.response_status, record.response_body)
            if record.locked_until > now:
                return None  # still in flight: caller waits
            record.locked_until = now + self.lock
            if record.resource_id is not None:
                return Claim(
                    "resume", resource_type=record.resource_type, resource_id=record.resource_id
                )
            return Claim("new")

    def attach(
        self, session: Session, request: IdempotencyRequest, resource_type: str, resource_id: str
    ) -> None:
        """Bind the resource created under this key, in the transaction that creates it."""
        result = session.execute(
            self._update(request).values(resource_type=resource_type, resource_id=resource_id)
        )
        assert result.rowcount == 1, "attach() after begin()"  # type: ignore[attr-defined]

    def complete(
        self,
        request: IdempotencyRequest,
        status: int,
        body: dict[str, Any],
        *,
        session: Session | None = None,
    ) -> None:
        """Store the response that retries replay: in `session` (the transaction recording the
        outcome) when given, else in a transaction of its own."""
        statement = self._update(request).values(
            state="completed", response_status=status, response_body=body
        )
        if session is not None:
            session.execute(statement)
        else:
            with self.db.transaction() as own:
                own.execute(statement)
        request.response_stored = True

    @staticmethod
    def _update(request: IdempotencyRequest) -> Any:
        """One UPDATE of this key's record, by primary key. No session loads these records
        (begin() uses its own), so there is no in-session state to synchronize."""
        return (
            update(IdempotencyRecord)
            .where(
                IdempotencyRecord.partner_id == request.partner_id,
                IdempotencyRecord.key == request.key,
            )
            .execution_options(synchronize_session=False)
        )

    def release(self, request: IdempotencyRequest) -> None:
        """Forget an in-flight key whose request changed nothing, so the client may retry."""
        with self.db.transaction() as session:
            session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.partner_id == request.partner_id,
                    IdempotencyRecord.key == request.key,
                    IdempotencyRecord.state == "in_flight",
                    IdempotencyRecord.resource_id.is_(None),
                )
            )

    def purge_expired(self, batch: int = 1000) -> int:
        """Delete expired records (a worker calls this periodically)."""
        now = self.clock.now()
        with self.db.transaction() as session:
            keys = session.execute(
                select(IdempotencyRecord.partner_id, IdempotencyRecord.key)
                .where(IdempotencyRecord.expires_at <= now)
                .limit(batch)
            ).all()
            for partner_id, key in keys:
                session.execute(
                    delete(IdempotencyRecord).where(
                        IdempotencyRecord.partner_id == partner_id, IdempotencyRecord.key == key
                    )
                )
        return len(keys)
