"""Settlement and reconciliation: what the core booked, matched against what we did.

The core pushes booked entries (ISO 20022 camt.054 notifications and camt.053 statements, or
a JSON batch). Each message is:

1. **received** — streamed through the parser, validated against its schema entry by entry,
   and stored raw (gzip, in chunks) under the sender's message id, in bounded memory. Invalid
   messages are rejected whole and leave nothing behind; a resend of an applied message id is
   answered with the original result and changes nothing.
2. **applied** — re-read from the stored raw in batches; every entry on a reconciled account
   (partner settlement accounts, fee income and provider clearing accounts) is matched to the
   movement it books by end-to-end reference (`tr_`, `rf_`, `fee_`, `po_` ids), falling back
   to the core's reference, and classified: the movement's own leg (`primary`), the other leg
   of a posting (`counterpart`), a `reversal`, a second booking (`duplicate`) or `unmatched`.
   Disagreements become breaks. A batch commits its entries, breaks, transfer settlement dates
   and the message's progress together, so a crash resumes where it stopped.
3. **completed** — a camt.053 statement of a partner's settlement account (its last page)
   completes that partner's settlement for the statement's date: the net position is frozen
   and `settlement.completed` is sent. An operator can also close a date.

A posting has two legs (a debit transfer debits the customer and credits the partner's
settlement account); only the leg on the partner's side is counted. Reversal of entries
previously counted is a break, as are movements whose entry never arrives (checked by a
worker after an SLA). See docs/settlement.md.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.domain.clock import Clock, rfc3339
from gateway.domain.errors import (
    Conflict,
    FieldError,
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    Unprocessable,
)
from gateway.domain.ids import is_id, new_id
from gateway.domain.money import Money, MoneyError
from gateway.domain.payouts import PayoutStatus
from gateway.domain.settlement import (
    BreakType,
    Category,
    Position,
    SettlementEntry,
    Side,
    mask_account,
)
from gateway.domain.transfers import RefundStatus, TransferStatus
from gateway.iso20022.reader import Header, MessageRejected, Readable, Record, StreamReader
from gateway.observability import metrics
from gateway.observability.logging import get_logger
from gateway.services.partners import Principal
from gateway.store.audit import record_audit
from gateway.store.db import Database
from gateway.store.events import record_event
from gateway.store.message_archive import ArchiveReader, RawTee, compress, stored_chunks
from gateway.store.pagination import page
from gateway.store.tables import (
    Partner,
    Payout,
    ReconciliationBreak,
    Refund,
    Settlement,
    SettlementEntryRow,
    SettlementMessage,
    SettlementMessageChunk,
    Transfer,
)

log = get_logger("gateway.settlement")
S = TransferStatus
T = TypeVar("T")

EVENTS_FORMAT = "settlement-events"
# Roles of a stored entry (see SettlementEntryRow).
PRIMARY, COUNTERPART, REVERSAL, DUPLICATE, UNMATCHED = (
    "primary",
    "counterpart",
    "reversal",
    "duplicate",
    "unmatched",
)
COUNTED_ROLES = (PRIMARY, REVERSAL, DUPLICATE)
# Movements the core may have booked, as far as the gateway knows.
SETTLEABLE_TRANSFER = frozenset(
    {
        S.SUCCEEDED,
        S.PARTIALLY_REFUNDED,
        S.REFUNDED,
        S.REVERSED,
        S.UNKNOWN,  # the outcome was lost; recovery will find the booking
        S.PROCESSING,
        S.AUTHORIZED,  # a capture in flight
    }
)
FINAL_TRANSFER = (S.SUCCEEDED.value, S.PARTIALLY_REFUNDED.value, S.REFUNDED.value)
SETTLEABLE_REFUND = frozenset(
    {RefundStatus.SUCCEEDED, RefundStatus.UNKNOWN, RefundStatus.PROCESSING}
)
SETTLEABLE_FEE = frozenset({"booked", "pending"})


@dataclass(frozen=True)
class SettlementPolicy:
    missing_entry_sla: timedelta
    missing_entry_lookback: timedelta
    batch_size: int
    message_lease: timedelta
    max_errors: int
    fee_income_accounts: dict[str, str]  # currency -> account
    clearing_accounts: dict[str, str]  # account -> provider
    timezone: ZoneInfo


@dataclass(frozen=True)
class IngestOutcome:
    body: dict[str, Any]
    replayed: bool


# --- expected legs: what each of our movements should look like on the core's books --------


@dataclass(frozen=True)
class Expected:
    """The leg of one of our movements that is counted: on which account, which side, how much."""

    resource_type: str  # transfer | refund | fee | payout
    resource_id: str
    partner_id: str | None
    account: str | None
    side: Side
    amount: int
    currency: str
    category: Category
    settleable: bool  # the gateway considers it booked (or possibly booked)
    state: str
    reversal_expected: bool = False
    transfer_id: str | None = None  # a transfer whose settlement_date the match sets
    counter_account: str | None = None  # the other leg's account, if we reconcile it too


class _Accounts:
    """The reconciled accounts and who owns them (loaded once per message)."""

    def __init__(self, session: Session, policy: SettlementPolicy) -> None:
        rows = session.execute(
            select(Partner.id, Partner.settlement_account, Partner.settlement_currency).where(
                Partner.settlement_account.is_not(None)
            )
        ).all()
        self.by_partner = {
            row.id: (row.settlement_account, row.settlement_currency) for row in rows
        }
        self.owner = {row.settlement_account: row.id for row in rows}
        self.currency_of = {row.settlement_account: row.settlement_currency for row in rows}
        self.fee_income = set(policy.fee_income_accounts.values())
        self.fee_income_for = dict(policy.fee_income_accounts)
        self.clearing = set(policy.clearing_accounts)

    def reconciled(self, account: str) -> bool:
        return account in self.owner or account in self.fee_income or account in self.clearing

    def settlement_account(self, partner_id: str) -> str | None:
        return self.by_partner.get(partner_id, (None, None))[0]


Lookup = Callable[[Session, Sequence[str], _Accounts, bool], dict[str, Expected]]


def _transfer_expected(row: Any, accounts: _Accounts) -> Expected:
    debit = row.direction == "debit"
    return Expected(
        resource_type="transfer",
        resource_id=row.id,
        partner_id=row.partner_id,
        account=accounts.settlement_account(row.partner_id),
        side=Side.CREDIT if debit else Side.DEBIT,
        amount=row.captured_amount or row.amount,
        currency=row.currency,
        category=Category.DEBIT if debit else Category.CREDIT,
        settleable=row.status in SETTLEABLE_TRANSFER,
        state=row.status,
        reversal_expected=row.status == S.REVERSED,
        transfer_id=row.id,
    )


_TRANSFER_COLUMNS = (
    Transfer.id,
    Transfer.partner_id,
    Transfer.direction,
    Transfer.status,
    Transfer.currency,
    Transfer.amount,
    Transfer.captured_amount,
    Transfer.core_reference,
)


def _transfers(
    session: Session, ids: Sequence[str], accounts: _Accounts, lock: bool
) -> dict[str, Expected]:
    query = select(*_TRANSFER_COLUMNS).where(Transfer.id.in_(ids)).order_by(Transfer.id)
    if lock:  # orders us with refunds/recovery touching the same transfers (PostgreSQL)
        query = query.with_for_update(of=Transfer)
    return {row.id: _transfer_expected(row, accounts) for row in session.execute(query)}


def _transfers_by_core_reference(
    session: Session, references: Sequence[str], accounts: _Accounts, lock: bool
) -> dict[str, Expected]:
    query = select(*_TRANSFER_COLUMNS).where(Transfer.core_reference.in_(references))
    return {row.core_reference: _transfer_expected(row, accounts) for row in session.execute(query)}


def _refund_expected(row: Any, accounts: _Accounts) -> Expected:
    return Expected(
        resource_type="refund",
        resource_id=row.id,
        partner_id=row.partner_id,
        account=accounts.settlement_account(row.partner_id),
        side=Side.DEBIT,
        amount=row.amount,
        currency=row.currency,
        category=Category.REFUND,
        settleable=row.status in SETTLEABLE_REFUND,
        state=row.status,
    )


_REFUND_COLUMNS = (
    Refund.id,
    Refund.partner_id,
    Refund.status,
    Refund.currency,
    Refund.amount,
    Refund.core_reference,
)


def _refunds(
    session: Session, ids: Sequence[str], accounts: _Accounts, lock: bool
) -> dict[str, Expected]:
    query = select(*_REFUND_COLUMNS).where(Refund.id.in_(ids))
    return {row.id: _refund_expected(row, accounts) for row in session.execute(query)}


def _refunds_by_core_reference(
    session: Session, references: Sequence[str], accounts: _Accounts, lock: bool
) -> dict[str, Expected]:
    query = select(*_REFUND_COLUMNS).where(Refund.core_reference.in_(references))
    return {row.core_reference: _refund_expected(row, accounts) for row in session.execute(query)}


def _fees(
    session: Session, ids: Sequence[str], accounts: _Accounts, lock: bool
) -> dict[str, Expected]:
    """A fee is posted from the partner's settlement account to fee income under `fee_...`."""
    query = select(
        Transfer.fee_reference,
        Transfer.partner_id,
        Transfer.currency,
        Transfer.fee_amount,
        Transfer.fee_status,
    ).where(Transfer.fee_reference.in_(ids))
    return {
        row.fee_reference: Expected(
            resource_type="fee",
            resource_id=row.fee_reference,
            partner_id=row.partner_id,
            account=accounts.settlement_account(row.partner_id),
            side=Side.DEBIT,
            amount=row.fee_amount,
            currency=row.currency,
            category=Category.FEE,
            settleable=row.fee_status in SETTLEABLE_FEE,
            state=row.fee_status or "none",
            counter_account=accounts.fee_income_for.get(row.currency),
        )
        for row in session.execute(query)
    }


_PAYOUT_COLUMNS = (
    Payout.id,
    Payout.partner_id,
    Payout.status,
    Payout.currency,
    Payout.amount,
    Payout.clearing_account,
    Payout.core_reference,
)


def _payout_expected(row: Any, accounts: _Accounts) -> Expected:
    """A payout's capture credits the provider's clearing account with the amount sent."""
    return Expected(
        resource_type="payout",
        resource_id=row.id,
        partner_id=row.partner_id,
        account=row.clearing_account,
        side=Side.CREDIT,
        amount=row.amount,
        currency=row.currency,
        category=Category.PAYOUT,
        settleable=row.status == PayoutStatus.SUCCEEDED.value,
        state=row.status,
    )


def _payouts(
    session: Session, ids: Sequence[str], accounts: _Accounts, lock: bool
) -> dict[str, Expected]:
    query = select(*_PAYOUT_COLUMNS).where(Payout.id.in_(ids))
    return {row.id: _payout_expected(row, accounts) for row in session.execute(query)}


def _payouts_by_core_reference(
    session: Session, references: Sequence[str], accounts: _Accounts, lock: bool
) -> dict[str, Expected]:
    query = select(*_PAYOUT_COLUMNS).where(Payout.core_reference.in_(references))
    return {row.core_reference: _payout_expected(row, accounts) for row in session.execute(query)}


# End-to-end reference prefix -> lookup of the movements it names.
REFERENCE_LOOKUPS: dict[str, Lookup] = {
    "tr": _transfers,
    "rf": _refunds,
    "fee": _fees,
    "po": _payouts,
}
# When the end-to-end reference is absent or unknown: the core's reference of the posting.
CORE_REFERENCE_LOOKUPS: tuple[Lookup, ...] = (
    _transfers_by_core_reference,
    _refunds_by_core_reference,
    _payouts_by_core_reference,
)


def _prefix(reference: str | None) -> str | None:
    if not reference or "_" not in reference:
        return None
    prefix = reference.split("_", 1)[0]
    return prefix if prefix in REFERENCE_LOOKUPS and is_id(reference, prefix) else None


# --- views -------------------------------------------------------------------------------------


def _money(minor: int | None, currency: str | None) -> dict[str, str] | None:
    if minor is None or currency is None:
        return None
    return Money(abs(minor), currency).to_wire()


def _signed(minor: int, currency: str) -> dict[str, str]:
    return Money(minor, currency).to_wire()


def _when(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment else None


def settlement_view(row: Settlement) -> dict[str, Any]:
    currency = row.currency
    return {
        "id": row.id,
        "partner_id": row.partner_id,
        "status": row.status,
        "settlement_date": row.settlement_date.isoformat(),
        "currency": currency,
        "debits": _signed(row.debits, currency),
        "credits": _signed(row.credits, currency),
        "refunds": _signed(row.refunds, currency),
        "fees": _signed(row.fees, currency),
        "reversals": _signed(row.reversals, currency),
        "net": _signed(row.net, currency),
        "entry_count": row.entry_count,
        "completion": None
        if row.completed_by is None
        else ("operator" if row.completed_by.startswith("operator") else "statement"),
        "completed_at": _when(row.completed_at),
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


def _leg(minor: int | None, currency: str | None) -> dict[str, Any] | None:
    if minor is None or currency is None:
        return None
    return {
        "amount": Money(abs(minor), currency).to_wire(),
        "side": Side.CREDIT.value if minor >= 0 else Side.DEBIT.value,
    }


def break_view(row: ReconciliationBreak) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "status": row.status,
        "partner_id": row.partner_id,
        "settlement_date": row.settlement_date.isoformat() if row.settlement_date else None,
        "resource": {"type": row.resource_type, "id": row.resource_id} if row.resource_id else None,
        "reference": row.reference,
        "core_reference": row.core_reference,
        "account": row.account_mask,
        "expected": _leg(row.expected_amount, row.expected_currency),
        "actual": _leg(row.actual_amount, row.actual_currency),
        "entry_id": row.entry_id,
        "message": row.message_pk,
        "details": dict(row.details or {}),
        "detected_at": rfc3339(row.detected_at),
        "resolved_at": _when(row.resolved_at),
        "resolved_by": row.resolved_by,
        "resolution": row.resolution,
    }


def message_view(row: SettlementMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "sender_id": row.sender_id,
        "message_id": row.message_id,
        "format": row.format,
        "kind": row.kind,
        "status": row.status,
        "size_bytes": row.size_bytes,
        "stored_bytes": row.stored_bytes,
        "sha256": row.sha256,
        "entries": row.entry_count,
        "created_at": _when(row.created_at),
        "received_at": rfc3339(row.received_at),
        "applied_at": _when(row.applied_at),
    }


# --- the work of applying one message ------------------------------------------------------


@dataclass
class _Run:
    """What applying one message has done so far (merged after each committed batch)."""

    outcome: Counter[str] = field(default_factory=Counter)
    breaks: Counter[str] = field(default_factory=Counter)
    statements: dict[tuple[str, date], bool] = field(default_factory=dict)  # -> final page
    records: int = 0
    entries: int = 0

    def merge(self, other: _Run) -> None:
        self.outcome.update(other.outcome)
        self.breaks.update(other.breaks)


@dataclass(frozen=True)
class _Message:
    pk: str
    sender_id: str
    message_id: str
    format: str
    kind: str
    applied_count: int


@dataclass
class _BreakSpec:
    type: BreakType
    details: dict[str, Any]
    expected: Expected | None = None


def _retry_on_conflict(action: Callable[[], T], attempts: int = 4) -> T:
    """Run a transaction again when a concurrent one inserted the same unique row first."""
    for attempt in range(attempts):
        try:
            return action()
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


class SettlementService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        policy: SettlementPolicy,
        on_transfer_reversed: Callable[[Session, str, str], None] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.policy = policy
        # Called in the matching transaction when the core reports a reversal of a transfer
        # the gateway holds as succeeded: the transfer service moves it to `reversed`.
        self.on_transfer_reversed = on_transfer_reversed

    # --- ingestion: ISO 20022 --------------------------------------------------------------

    def ingest_iso20022(self, sender: Principal, stream: Readable) -> IngestOutcome:
        """Receive, validate, store and apply one camt.053/camt.054 message (a stream)."""
        self._require_core(sender)
        raw = RawTee(stream)
        reader = StreamReader(raw, validate=True, max_errors=self.policy.max_errors)
        items = iter(reader)
        try:
            header = next(items)
        except MessageRejected as exc:
            raise self._rejected(sender, None, "iso20022", exc) from None
        except StopIteration:  # pragma: no cover - the reader always yields a header or raises
            raise InvalidRequest("The message is empty", code="invalid_message") from None
        assert isinstance(header, Header)
        definition = header.definition
        claim = self._claim(
            sender.id, header.message_id, definition.name, definition.kind, header.created_at
        )
        if claim.kind in ("replay", "resume"):
            raw.drain()
            return self._answer_resend(claim, raw.sha256, definition.name)
        sequence = 0

        def store(chunk: bytes) -> None:
            nonlocal sequence
            self._store_chunk(claim.pk, sequence, chunk)
            sequence += 1

        raw.attach(store)
        try:
            for _item in items:
                pass
            raw.finish()
        except MessageRejected as exc:
            self._discard(claim.pk)
            raise self._rejected(sender, header.message_id, definition.name, exc) from None
        except BaseException:
            self._discard(claim.pk)
            raise
        self._stored(claim.pk, raw.sha256, raw.size, reader.entry_count)
        return IngestOutcome(self.apply(claim.pk), replayed=False)

    # --- ingestion: JSON batch -------------------------------------------------------------

    def ingest_events(
        self,
        sender: Principal,
        message_id: str,
        body: dict[str, Any],
        raw: bytes | None = None,
    ) -> IngestOutcome:
        """Receive and apply a JSON batch of booked entries, idempotent by batch id.

        `raw` is the request body as received (`body` parsed): it is what is stored, for audit,
        and what `sha256` digests, like an ISO 20022 message. Without it (a caller that has
        only the parsed batch) the batch's canonical JSON is stored instead. A resend is
        recognised by content: the same JSON with other whitespace or key order is the same
        batch (see `_same_batch`).
        """
        self._require_core(sender)
        entries = list(_entries_from_json(body))  # validates before anything is stored
        data = raw if raw else _canonical_json(body)
        digest = hashlib.sha256(data).hexdigest()
        claim = self._claim(sender.id, message_id, EVENTS_FORMAT, "events", None)
        if claim.kind in ("replay", "resume"):
            if claim.sha256 not in (None, digest) and self._same_batch(claim.pk, data):
                digest = claim.sha256 or digest
            return self._answer_resend(claim, digest, EVENTS_FORMAT)
        self._store_chunk(claim.pk, 0, compress(data))
        self._stored(claim.pk, digest, len(data), len(entries))
        return IngestOutcome(self.apply(claim.pk), replayed=False)

    def _same_batch(self, message_pk: str, data: bytes) -> bool:
        """Whether a resent JSON batch says what the stored one says, formatting aside.

        Only reached when the bytes differ (a core that re-serialises its batch when it
        retries); a batch is at most 1 MiB, so re-reading the stored one is cheap.
        """
        stored = ArchiveReader(stored_chunks(self.db, message_pk)).read()
        try:
            return _canonical_json(json.loads(stored)) == _canonical_json(json.loads(data))
        except ValueError:  # pragma: no cover - both were valid JSON when received
            return False

    # --- claiming a message id -------------------------------------------------------------

    @dataclass(frozen=True)
    class _Claim:
        kind: str  # new | replay | resume
        pk: str
        sha256: str | None = None
        result: dict[str, Any] | None = None

    def _claim(
        self,
        sender_id: str,
        message_id: str,
        fmt: str,
        kind: str,
        created_at: datetime | None,
    ) -> SettlementService._Claim:
        def attempt() -> SettlementService._Claim:
            now = self.clock.now()
            with self.db.transaction() as session:
                row = session.scalars(
                    select(SettlementMessage)
                    .where(
                        SettlementMessage.sender_id == sender_id,
                        SettlementMessage.message_id == message_id,
                    )
                    .with_for_update()
                ).first()
                if row is None:
                    row = SettlementMessage(
                        id=new_id("msg"),
                        sender_id=sender_id,
                        message_id=message_id,
                        format=fmt,
                        kind=kind,
                        status="receiving",
                        lease_until=now + self.policy.message_lease,
                        size_bytes=0,
                        stored_bytes=0,
                        entry_count=0,
                        applied_count=0,
                        created_at=created_at,
                        received_at=now,
                    )
                    session.add(row)
                    session.flush()
                    return self._Claim("new", row.id)
                if row.status == "applied":
                    return self._Claim("replay", row.id, row.sha256, row.result)
                if row.lease_until is not None and row.lease_until > now:
                    raise Conflict(
                        "This message is being received or applied; retry later",
                        code="message_in_flight",
                        headers={"Retry-After": "5"},
                    )
                # Its process died. Received in full: finish applying it. Else start over.
                row.lease_until = now + self.policy.message_lease
                if row.status == "applying":
                    return self._Claim("resume", row.id, row.sha256)
                session.execute(
                    delete(SettlementMessageChunk).where(
                        SettlementMessageChunk.message_pk == row.id
                    )
                )
                row.format, row.kind, row.created_at, row.received_at = fmt, kind, created_at, now
                return self._Claim("new", row.id)

        try:
            return _retry_on_conflict(attempt, attempts=2)
        except IntegrityError:
            raise Conflict(
                "This message is being received; retry later",
                code="message_in_flight",
                headers={"Retry-After": "5"},
            ) from None

    def _answer_resend(self, claim: _Claim, digest: str, fmt: str) -> IngestOutcome:
        if claim.sha256 is not None and claim.sha256 != digest:
            metrics.SETTLEMENT_MESSAGES.labels(fmt, "rejected").inc()
            raise Unprocessable(
                "This message id was already used for a message with different content",
                code="message_id_reused",
            )
        if claim.kind == "resume":
            return IngestOutcome(self.apply(claim.pk), replayed=False)
        metrics.SETTLEMENT_MESSAGES.labels(fmt, "replayed").inc()
        assert claim.result is not None
        return IngestOutcome(claim.result, replayed=True)

    def _store_chunk(self, message_pk: str, seq: int, data: bytes) -> None:
        with self.db.transaction() as session:
            session.add(SettlementMessageChunk(message_pk=message_pk, seq=seq, data=data))
            session.execute(
                update(SettlementMessage)
                .where(SettlementMessage.id == message_pk)
                .values(
                    lease_until=self.clock.now() + self.policy.message_lease,
                    stored_bytes=SettlementMessage.stored_bytes + len(data),
                )
            )

    def _stored(self, message_pk: str, sha256: str, size: int, entries: int) -> None:
        with self.db.transaction() as session:
            row = session.get(SettlementMessage, message_pk, with_for_update=True)
            assert row is not None
            row.status = "applying"
            row.sha256 = sha256
            row.size_bytes = size
            row.entry_count = entries
            row.lease_until = self.clock.now() + self.policy.message_lease

    def _discard(self, message_pk: str) -> None:
        """Forget a message that was not received in full: nothing of it was applied."""
        with self.db.transaction() as session:
            session.execute(
                delete(SettlementMessageChunk).where(
                    SettlementMessageChunk.message_pk == message_pk
                )
            )
            session.execute(delete(SettlementMessage).where(SettlementMessage.id == message_pk))

    def _rejected(
        self, sender: Principal, message_id: str | None, fmt: str, exc: MessageRejected
    ) -> GatewayError:
        metrics.SETTLEMENT_MESSAGES.labels(fmt, "rejected").inc()
        with self.db.transaction() as session:
            record_audit(
                session,
                actor=f"partner:{sender.id}",
                action="settlement.message_rejected",
                target_type="settlement_message",
                target_id=(message_id or "unknown")[:64],
                at=self.clock.now(),
                details={
                    "format": fmt,
                    "code": exc.code,
                    "errors": [e.as_problem_entry() for e in exc.errors[:5]],
                },
            )
        log.warning(
            "settlement_message_rejected",
            sender_id=sender.id,
            code=exc.code,
            errors=len(exc.errors),
        )
        errors: list[FieldError] = [e.as_problem_entry() for e in exc.errors]
        if exc.code == "unsupported_message":
            return Unprocessable(exc.detail, code=exc.code, errors=errors)
        return InvalidRequest(exc.detail, code=exc.code, errors=errors)

    @staticmethod
    def _require_core(sender: Principal) -> None:
        # Defence in depth: through the API this cannot fail, since only partners of kind
        # `core` may hold `settlement:write` (gateway/security/scopes.py). It guards callers
        # of the service that do not come through the API's scope check.
        if sender.kind != "core":
            raise PermissionDenied(
                "Only the core banking system may push settlement messages",
                code="core_partner_required",
            )

    # --- applying --------------------------------------------------------------------------

    def _message(self, message_pk: str) -> _Message:
        with self.db.read() as session:
            row = session.get(SettlementMessage, message_pk)
            if row is None:
                raise NotFound("No such settlement message", code="message_not_found")
            return _Message(
                row.id, row.sender_id, row.message_id, row.format, row.kind, row.applied_count
            )

    def _items(self, message: _Message) -> Iterator[Header | Record | SettlementEntry]:
        stream = ArchiveReader(stored_chunks(self.db, message.pk))
        if message.format == EVENTS_FORMAT:
            yield from _entries_from_json(json.loads(stream.read()))
            return
        yield from StreamReader(stream, validate=False)

    def apply(self, message_pk: str) -> dict[str, Any]:
        """Match a stored message's entries in batches, complete settlements, finish.

        Safe to run again after a crash: batches already committed are skipped.
        """
        message = self._message(message_pk)
        run = _Run()
        batch: list[SettlementEntry] = []
        record_dates: dict[int, date] = {}
        records: list[Record] = []
        header: Header | None = None
        with self.db.read() as session:
            accounts = _Accounts(session, self.policy)
        for item in self._items(message):
            if isinstance(item, Header):
                header = item
            elif isinstance(item, Record):
                run.records += 1
                if message.kind == "statement" and item.account in accounts.owner:
                    records.append(item)
            else:
                run.entries += 1
                if records and item.record_id == records[-1].id:
                    index = records[-1].index
                    record_dates[index] = max(
                        record_dates.get(index, item.booking_date), item.booking_date
                    )
                if item.seq <= message.applied_count:
                    continue  # committed before an interruption
                batch.append(item)
                if len(batch) >= self.policy.batch_size:
                    self._apply_batch(message, batch, accounts, run)
                    batch = []
        if batch:
            self._apply_batch(message, batch, accounts, run)
        last_page = header.last_page if header is not None else True
        for record in records:
            on = _statement_date(record, record_dates.get(record.index))
            if on is not None:
                owner = accounts.owner[record.account]
                run.statements[(owner, on)] = last_page and record.last_page
        result = _retry_on_conflict(lambda: self._finish(message, run))
        if result.get("breaks"):
            self.refresh_metrics()
        return result

    def _apply_batch(
        self,
        message: _Message,
        entries: list[SettlementEntry],
        accounts: _Accounts,
        run: _Run,
    ) -> None:
        def attempt() -> _Run:
            with self.db.transaction() as session:
                return self._match(session, message, entries, accounts)

        done = _retry_on_conflict(attempt)
        run.merge(done)
        for outcome, count in done.outcome.items():
            metrics.SETTLEMENT_ENTRIES.labels(outcome).inc(count)
        for kind, count in done.breaks.items():
            metrics.RECONCILIATION_BREAKS.labels(kind).inc(count)

    def _match(
        self,
        session: Session,
        message: _Message,
        entries: list[SettlementEntry],
        accounts: _Accounts,
    ) -> _Run:
        """Classify one batch of entries (one transaction). Returns what it did."""
        now = self.clock.now()
        run = _Run()
        keys = [entry.identity() for entry in entries]
        known = {
            row.entry_key: row
            for row in session.execute(
                select(
                    SettlementEntryRow.id,
                    SettlementEntryRow.entry_key,
                    SettlementEntryRow.message_pk,
                    SettlementEntryRow.seq,
                    SettlementEntryRow.confirmed_by,
                ).where(SettlementEntryRow.entry_key.in_(keys))
            )
        }
        fresh: list[tuple[SettlementEntry, str, bool]] = []  # entry, key, repeated in message
        confirm: list[int] = []
        for entry, key in zip(entries, keys, strict=True):
            earlier = known.get(key)
            if earlier is None:
                fresh.append((entry, key, False))
            elif earlier.message_pk == message.pk:
                if earlier.seq != entry.seq:  # listed twice in one message
                    fresh.append((entry, _repeat_key(key, message.pk, entry.seq), True))
            else:  # the same booked entry, reported again (e.g. camt.054, then camt.053)
                run.outcome["confirmed"] += 1
                if message.kind == "statement" and earlier.confirmed_by is None:
                    confirm.append(earlier.id)
        repeats = [key for _entry, key, repeated in fresh if repeated]
        if repeats:
            seen = set(
                session.scalars(
                    select(SettlementEntryRow.entry_key).where(
                        SettlementEntryRow.entry_key.in_(repeats)
                    )
                )
            )
            fresh = [item for item in fresh if item[1] not in seen]

        expected = self._expected(session, [entry for entry, _key, _r in fresh], accounts)
        resource_ids = {exp.resource_id for exp in expected.values()}
        counted_before: set[str] = set()  # resources whose own leg is already on the books
        missing: dict[str, ReconciliationBreak] = {}  # open missing-entry breaks, to resolve
        if resource_ids:
            counted_before = {
                str(matched)
                for matched in session.scalars(
                    select(SettlementEntryRow.matched_id).where(
                        SettlementEntryRow.matched_id.in_(resource_ids),
                        SettlementEntryRow.role == PRIMARY,
                    )
                )
            }
            for late in session.scalars(
                select(ReconciliationBreak).where(
                    ReconciliationBreak.resource_id.in_(resource_ids),
                    ReconciliationBreak.type == BreakType.MISSING_ENTRY.value,
                    ReconciliationBreak.status == "open",
                )
            ):
                missing[str(late.resource_id)] = late

        rows: list[tuple[dict[str, Any], _BreakSpec | None, SettlementEntry]] = []
        settled: dict[date, list[str]] = defaultdict(list)
        found: list[tuple[Expected, SettlementEntry]] = []
        reversed_by_core: list[str] = []
        for entry, key, repeated in fresh:
            exp = expected.get(entry.seq)
            in_scope = accounts.reconciled(entry.account)
            if exp is not None and entry.account == exp.counter_account:
                # The other leg of one of our postings on an account we also reconcile (the
                # fee income side of a fee): recorded, never counted twice.
                rows.append(
                    (self._row(message, entry, key, COUNTERPART, exp, accounts, now), None, entry)
                )
                run.outcome["counterpart"] += 1
                continue
            if exp is None or entry.account != exp.account:
                if not in_scope:
                    run.outcome["outside_scope"] += 1  # e.g. the customer's leg: not ours to count
                    continue
                stray = _BreakSpec(
                    BreakType.DUPLICATE if repeated else BreakType.UNMATCHED_ENTRY, {}
                )
                if repeated:
                    stray.details["reason"] = "listed twice in the same message"
                elif exp is not None:
                    stray.details["reason"] = (
                        f"references {exp.resource_id}, whose money moves on another account"
                    )
                role = DUPLICATE if repeated else UNMATCHED
                rows.append(
                    (self._row(message, entry, key, role, None, accounts, now), stray, entry)
                )
                run.outcome["duplicate" if repeated else "unmatched"] += 1
                continue
            role, spec = self._judge(entry, exp, repeated, counted_before)
            if role == REVERSAL and spec is not None and exp.resource_type == "transfer":
                reversed_by_core.append(exp.resource_id)
            if role == PRIMARY:
                counted_before.add(exp.resource_id)
                found.append((exp, entry))
                if exp.transfer_id:
                    settled[entry.booking_date].append(exp.transfer_id)
            rows.append((self._row(message, entry, key, role, exp, accounts, now), spec, entry))
            run.outcome[{PRIMARY: "matched"}.get(role, role)] += 1

        if rows:
            # Core inserts (no ORM objects): a statement may carry millions of entries.
            session.execute(insert(SettlementEntryRow), [stored for stored, _s, _e in rows])
            flagged = [(stored, spec, entry) for stored, spec, entry in rows if spec is not None]
            ids: dict[str, int] = {}
            if flagged:  # (RETURNING in parameter order would be row by row on SQLite)
                keys_flagged = [stored["entry_key"] for stored, _spec, _entry in flagged]
                for key, entry_id in session.execute(
                    select(SettlementEntryRow.entry_key, SettlementEntryRow.id).where(
                        SettlementEntryRow.entry_key.in_(keys_flagged)
                    )
                ):
                    ids[key] = entry_id
            found_breaks = [
                self._break(found_spec, stored, ids[stored["entry_key"]], entry, message, now)
                for stored, found_spec, entry in flagged
                if found_spec is not None
            ]
            if found_breaks:
                session.execute(insert(ReconciliationBreak), found_breaks)
            for found_break in found_breaks:
                run.breaks[found_break["type"]] += 1
        if self.on_transfer_reversed is not None:
            for transfer_id in reversed_by_core:
                self.on_transfer_reversed(
                    session, transfer_id, f"reversed by the core (settlement message {message.pk})"
                )
        for on, transfer_ids in settled.items():
            session.execute(
                update(Transfer)
                .where(Transfer.id.in_(transfer_ids), Transfer.settlement_date.is_(None))
                .values(settlement_date=on)
            )
        if confirm:
            session.execute(
                update(SettlementEntryRow)
                .where(SettlementEntryRow.id.in_(confirm))
                .values(confirmed_by=message.pk)
            )
        for exp, entry in found:
            overdue = missing.get(exp.resource_id)
            if overdue is not None:
                self._resolve_late(session, overdue, entry, message, now)
        session.execute(
            update(SettlementMessage)
            .where(SettlementMessage.id == message.pk)
            .values(
                applied_count=max(entry.seq for entry in entries),
                lease_until=now + self.policy.message_lease,
            )
        )
        return run

    def _expected(
        self, session: Session, entries: list[SettlementEntry], accounts: _Accounts
    ) -> dict[int, Expected]:
        """For each entry (by seq), the movement it books, if any of ours."""
        by_prefix: dict[str, set[str]] = defaultdict(set)
        for entry in entries:
            prefix = _prefix(entry.reference)
            if prefix is not None:
                by_prefix[prefix].add(entry.reference or "")
        lock = self.db.is_postgres
        by_reference: dict[str, Expected] = {}
        for prefix, ids in sorted(by_prefix.items()):
            by_reference.update(REFERENCE_LOOKUPS[prefix](session, sorted(ids), accounts, lock))
        core_refs = sorted(
            {
                entry.core_reference
                for entry in entries
                if entry.core_reference and (entry.reference or "") not in by_reference
            }
        )
        by_core: dict[str, Expected] = {}
        if core_refs:
            for lookup in CORE_REFERENCE_LOOKUPS:
                by_core.update(lookup(session, core_refs, accounts, False))
        result: dict[int, Expected] = {}
        for entry in entries:
            exp = by_reference.get(entry.reference or "") or by_core.get(entry.core_reference or "")
            if exp is not None:
                result[entry.seq] = exp
        return result

    @staticmethod
    def _judge(
        entry: SettlementEntry, exp: Expected, repeated: bool, counted_before: set[str]
    ) -> tuple[str, _BreakSpec | None]:
        """The role of an entry on the movement's own account, and the break it raises."""
        if entry.reversal:
            if exp.reversal_expected:
                return REVERSAL, None
            return REVERSAL, _BreakSpec(
                BreakType.REVERSED_AFTER_SETTLEMENT,
                {
                    "reason": f"the core reversed a {exp.resource_type} "
                    f"the gateway holds as {exp.state}"
                },
                exp,
            )
        if not exp.settleable:
            return UNMATCHED, _BreakSpec(
                BreakType.UNMATCHED_ENTRY,
                {"reason": f"booked, but the gateway holds the {exp.resource_type} as {exp.state}"},
                exp,
            )
        if repeated or exp.resource_id in counted_before:
            return DUPLICATE, _BreakSpec(
                BreakType.DUPLICATE,
                {"reason": "listed twice in the same message" if repeated else "booked twice"},
                exp,
            )
        if entry.amount.currency != exp.currency:
            return PRIMARY, _BreakSpec(BreakType.CURRENCY_MISMATCH, {}, exp)
        if entry.side != exp.side or entry.amount.minor != exp.amount:
            details = {} if entry.side == exp.side else {"reason": "booked on the other side"}
            return PRIMARY, _BreakSpec(BreakType.AMOUNT_MISMATCH, details, exp)
        return PRIMARY, None

    def _row(
        self,
        message: _Message,
        entry: SettlementEntry,
        key: str,
        role: str,
        exp: Expected | None,
        accounts: _Accounts,
        now: datetime,
    ) -> dict[str, Any]:
        partner_id = exp.partner_id if exp is not None else accounts.owner.get(entry.account)
        currency = exp.currency if exp is not None else accounts.currency_of.get(entry.account)
        counted = role in COUNTED_ROLES and exp is not None and entry.amount.currency == currency
        category = None
        if exp is not None:
            category = Category.REVERSAL.value if role == REVERSAL else exp.category.value
        return {
            "entry_key": key,
            "message_pk": message.pk,
            "seq": entry.seq,
            "confirmed_by": message.pk if message.kind == "statement" else None,
            "account": entry.account,
            "currency": entry.amount.currency,
            "amount": entry.amount.minor,
            "side": entry.side.value,
            "reversal": entry.reversal,
            "booking_date": entry.booking_date,
            "value_date": entry.value_date,
            "reference": (entry.reference or "")[:64] or None,
            "core_reference": (entry.core_reference or "")[:64] or None,
            "entry_reference": (entry.entry_reference or "")[:64] or None,
            "role": role,
            "matched_type": exp.resource_type if exp is not None else None,
            "matched_id": exp.resource_id if exp is not None else None,
            "partner_id": partner_id,
            "settlement_date": entry.booking_date,
            "category": category,
            "signed_amount": entry.signed_minor,
            "counted": counted,
            "created_at": now,
        }

    @staticmethod
    def _break(
        spec: _BreakSpec,
        row: dict[str, Any],
        entry_id: int,
        entry: SettlementEntry,
        message: _Message,
        now: datetime,
    ) -> dict[str, Any]:
        exp = spec.expected
        # What we expected on the account, where there is something to compare with.
        expected_signed = None
        if exp is not None and spec.type in (
            BreakType.AMOUNT_MISMATCH,
            BreakType.CURRENCY_MISMATCH,
        ):
            expected_signed = exp.side.sign * exp.amount
        return {
            "id": new_id("brk"),
            "break_key": f"{spec.type.value}:{row['entry_key']}",
            "type": spec.type.value,
            "status": "open",
            "partner_id": row["partner_id"],
            "settlement_date": entry.booking_date,
            "entry_id": entry_id,
            "message_pk": message.pk,
            "resource_type": exp.resource_type if exp else None,
            "resource_id": exp.resource_id if exp else None,
            "reference": row["reference"],
            "core_reference": row["core_reference"],
            "account_mask": mask_account(entry.account),
            "expected_amount": expected_signed,
            "expected_currency": exp.currency if exp and expected_signed is not None else None,
            "actual_amount": entry.signed_minor,
            "actual_currency": entry.amount.currency,
            "details": spec.details,
            "detected_at": now,
            "version": 1,
            "updated_at": now,
        }

    def _resolve_late(
        self,
        session: Session,
        row: ReconciliationBreak,
        entry: SettlementEntry,
        message: _Message,
        now: datetime,
    ) -> None:
        """A missing entry that arrived after all: the break resolves itself (audited)."""
        row.status = "resolved"
        row.resolved_at = now
        row.resolved_by = "system"
        row.resolution = (
            f"the entry arrived late, booked {entry.booking_date.isoformat()} "
            f"(message {message.message_id[:60]})"
        )
        row.version += 1
        row.updated_at = now
        record_audit(
            session,
            actor="system",
            action="reconciliation.break_resolved",
            target_type="reconciliation_break",
            target_id=row.id,
            at=now,
            details={"type": row.type, "resolution": row.resolution},
        )

    def _finish(self, message: _Message, run: _Run) -> dict[str, Any]:
        """Refresh positions, complete the settlements the statement closes, mark applied.

        What the message stored is read back from the database rather than from memory, so a
        message resumed after a crash reports (and refreshes) everything it did.
        """
        now = self.clock.now()
        completed: list[dict[str, Any]] = []
        with self.db.transaction() as session:
            row = session.get(SettlementMessage, message.pk, with_for_update=True)
            assert row is not None
            if row.status == "applied":  # a concurrent resume finished first
                return dict(row.result or {})
            touched: set[tuple[str, date]] = {
                (str(partner_id), on)
                for partner_id, on in session.execute(
                    select(SettlementEntryRow.partner_id, SettlementEntryRow.settlement_date)
                    .where(
                        SettlementEntryRow.message_pk == message.pk,
                        SettlementEntryRow.counted.is_(True),
                    )
                    .distinct()
                )
            }
            for partner_id, on in sorted(touched | set(run.statements)):
                if partner_id is None:
                    continue
                settlement = self._settlement(session, partner_id, on, now)
                if settlement is None or settlement.status == "completed":
                    continue
                self._refresh(session, settlement, now)
                if run.statements.get((partner_id, on)):
                    self._complete(session, settlement, f"statement:{message.pk}", now)
                    settlement.statement_message_pk = message.pk
                    completed.append(
                        {
                            "id": settlement.id,
                            "partner_id": partner_id,
                            "settlement_date": on.isoformat(),
                        }
                    )
            outcome = Counter(
                {k: v for k, v in run.outcome.items() if k in ("confirmed", "outside_scope")}
            )
            for role, count in session.execute(
                select(SettlementEntryRow.role, func.count())
                .where(SettlementEntryRow.message_pk == message.pk)
                .group_by(SettlementEntryRow.role)
            ):
                outcome["matched" if role == PRIMARY else role] += int(count)
            breaks = {
                kind: int(count)
                for kind, count in session.execute(
                    select(ReconciliationBreak.type, func.count())
                    .where(ReconciliationBreak.message_pk == message.pk)
                    .group_by(ReconciliationBreak.type)
                )
            }
            result = {
                "id": message.pk,
                "message_id": message.message_id,
                "format": message.format,
                "kind": message.kind,
                "status": "applied",
                "sha256": row.sha256,
                "size_bytes": row.size_bytes,
                "received_at": rfc3339(row.received_at),
                "applied_at": rfc3339(now),
                "records": run.records,
                "entries": run.entries,
                "outcome": dict(sorted(outcome.items())),
                "breaks": dict(sorted(breaks.items())),
                "settlements_completed": completed,
            }
            row.status = "applied"
            row.applied_at = now
            row.lease_until = None
            row.entry_count = run.entries
            row.result = result
        metrics.SETTLEMENT_MESSAGES.labels(message.format, "applied").inc()
        log.info(
            "settlement_message_applied",
            message=message.pk,
            format=message.format,
            entries=run.entries,
            breaks=sum(breaks.values()),
            completed=len(completed),
        )
        return result

    # --- settlements (positions) -----------------------------------------------------------

    def _settlement(
        self, session: Session, partner_id: str, on: date, now: datetime
    ) -> Settlement | None:
        row = session.scalars(
            select(Settlement)
            .where(Settlement.partner_id == partner_id, Settlement.settlement_date == on)
            .with_for_update()
        ).first()
        if row is not None:
            return row
        partner = session.get(Partner, partner_id)
        if partner is None or not partner.settlement_currency:
            return None
        row = Settlement(
            id=new_id("stl"),
            partner_id=partner_id,
            settlement_date=on,
            currency=partner.settlement_currency,
            status="open",
            debits=0,
            credits=0,
            refunds=0,
            fees=0,
            reversals=0,
            net=0,
            entry_count=0,
            version=1,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()  # a concurrent creator makes this fail; the caller retries
        return row

    @staticmethod
    def position(session: Session, partner_id: str, on: date, currency: str) -> Position:
        sums = {
            str(category): (int(total or 0), int(count))
            for category, total, count in session.execute(
                select(
                    SettlementEntryRow.category,
                    func.sum(SettlementEntryRow.signed_amount),
                    func.count(),
                )
                .where(
                    SettlementEntryRow.partner_id == partner_id,
                    SettlementEntryRow.settlement_date == on,
                    SettlementEntryRow.counted.is_(True),
                    SettlementEntryRow.currency == currency,
                )
                .group_by(SettlementEntryRow.category)
            )
        }
        return Position.from_sums(currency, sums)

    def _refresh(self, session: Session, row: Settlement, now: datetime) -> None:
        position = self.position(session, row.partner_id, row.settlement_date, row.currency)
        for name, value in position.figures().items():
            setattr(row, name, value)
        row.entry_count = position.entry_count
        row.updated_at = now

    def _complete(self, session: Session, row: Settlement, by: str, now: datetime) -> None:
        row.status = "completed"
        row.completed_at = now
        row.completed_by = by
        row.version += 1
        row.updated_at = now
        session.flush()
        record_event(
            session,
            type="settlement.completed",
            resource_type="settlement",
            resource_id=row.id,
            sequence=row.version,
            data=settlement_view(row),
            partner_id=row.partner_id,
            at=now,
        )

    def close_date(
        self, on: date, *, actor: str, reason: str, partner_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Operator close: complete open settlements of `on` (all, or one partner's)."""

        def attempt() -> list[dict[str, Any]]:
            now = self.clock.now()
            with self.db.transaction() as session:
                if partner_id is not None:
                    partner = session.get(Partner, partner_id)
                    if partner is None:
                        raise NotFound("No such partner", code="partner_not_found")
                    if not partner.settlement_account:
                        raise Unprocessable(
                            "The partner has no settlement account",
                            code="settlement_account_missing",
                        )
                    row = self._settlement(session, partner_id, on, now)
                    rows = [row] if row is not None else []
                else:
                    rows = list(
                        session.scalars(
                            select(Settlement)
                            .where(Settlement.settlement_date == on, Settlement.status == "open")
                            .order_by(Settlement.id)
                            .with_for_update()
                        )
                    )
                closed = []
                for row in rows:
                    if row.status == "completed":
                        continue
                    self._refresh(session, row, now)
                    self._complete(session, row, actor, now)
                    record_audit(
                        session,
                        actor=actor,
                        action="settlement.closed",
                        target_type="settlement",
                        target_id=row.id,
                        at=now,
                        details={"settlement_date": on.isoformat(), "reason": reason},
                    )
                    closed.append(settlement_view(row))
                return closed

        return _retry_on_conflict(attempt)

    def settlements_page(
        self,
        partner_id: str | None,
        *,
        cursor: str | None,
        limit: int,
        status: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
    ) -> dict[str, Any]:
        query = select(Settlement)
        if partner_id is not None:
            query = query.where(Settlement.partner_id == partner_id)
        if status:
            query = query.where(Settlement.status == status)
        if date_from:
            query = query.where(Settlement.settlement_date >= date_from)
        if date_to:
            query = query.where(Settlement.settlement_date <= date_to)
        with self.db.read() as session:
            return page(
                session, query, Settlement.id, cursor=cursor, limit=limit, render=settlement_view
            )

    def get_settlement(self, partner_id: str | None, settlement_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            row = session.get(Settlement, settlement_id)
            if row is None or (partner_id is not None and row.partner_id != partner_id):
                raise NotFound("No such settlement", code="settlement_not_found")
            return settlement_view(row)

    # --- breaks ----------------------------------------------------------------------------

    def breaks_page(
        self,
        *,
        cursor: str | None,
        limit: int,
        status: str | None = None,
        type: str | None = None,
        partner_id: str | None = None,
        settlement_date: date | None = None,
    ) -> dict[str, Any]:
        query = select(ReconciliationBreak)
        if status:
            query = query.where(ReconciliationBreak.status == status)
        if type:
            query = query.where(ReconciliationBreak.type == type)
        if partner_id:
            query = query.where(ReconciliationBreak.partner_id == partner_id)
        if settlement_date:
            query = query.where(ReconciliationBreak.settlement_date == settlement_date)
        with self.db.read() as session:
            return page(
                session,
                query,
                ReconciliationBreak.id,
                cursor=cursor,
                limit=limit,
                render=break_view,
            )

    def get_break(self, break_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            row = session.get(ReconciliationBreak, break_id)
            if row is None:
                raise NotFound("No such break", code="break_not_found")
            return break_view(row)

    def resolve_break(self, break_id: str, *, reason: str, actor: str) -> dict[str, Any]:
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(ReconciliationBreak, break_id, with_for_update=True)
            if row is None:
                raise NotFound("No such break", code="break_not_found")
            if row.status != "open":
                raise Conflict("The break is already resolved", code="break_resolved")
            row.status = "resolved"
            row.resolved_at = now
            row.resolved_by = actor
            row.resolution = reason
            row.version += 1
            row.updated_at = now
            record_audit(
                session,
                actor=actor,
                action="reconciliation.break_resolved",
                target_type="reconciliation_break",
                target_id=row.id,
                at=now,
                details={"type": row.type, "reason": reason},
            )
            view = break_view(row)
        self.refresh_metrics()
        return view

    def detect_missing_entries(self, batch: int = 500) -> int:
        """Raise `missing_entry` for movements whose entry is overdue (a worker job)."""
        now = self.clock.now()
        cutoff = now - self.policy.missing_entry_sla
        floor = cutoff - self.policy.missing_entry_lookback
        created = 0
        for detector in (
            self._missing_transfers,
            self._missing_refunds,
            self._missing_fees,
            self._missing_payouts,
        ):
            with self.db.transaction() as session:
                accounts = _Accounts(session, self.policy)
                for exp, succeeded_at in detector(session, floor, cutoff, batch, accounts):
                    created += self._add_missing(session, exp, succeeded_at, now)
        if created:
            log.warning("reconciliation_missing_entries", count=created)
            metrics.RECONCILIATION_BREAKS.labels(BreakType.MISSING_ENTRY.value).inc(created)
        self.refresh_metrics()
        return created

    @staticmethod
    def _no_missing_break(resource: Any) -> Any:
        return ~exists().where(
            ReconciliationBreak.resource_id == resource,
            ReconciliationBreak.type == BreakType.MISSING_ENTRY.value,
        )

    @staticmethod
    def _no_primary_entry(resource: Any) -> Any:
        return ~exists().where(
            SettlementEntryRow.matched_id == resource, SettlementEntryRow.role == PRIMARY
        )

    def _missing_transfers(
        self, session: Session, floor: datetime, cutoff: datetime, batch: int, accounts: _Accounts
    ) -> Iterable[tuple[Expected, datetime]]:
        rows = session.execute(
            select(*_TRANSFER_COLUMNS, Transfer.completed_at)
            .where(
                Transfer.status.in_(FINAL_TRANSFER),
                Transfer.settlement_date.is_(None),
                Transfer.completed_at >= floor,
                Transfer.completed_at < cutoff,
                self._no_missing_break(Transfer.id),
            )
            .order_by(Transfer.completed_at)
            .limit(batch)
        ).all()
        return [(_transfer_expected(row, accounts), row.completed_at) for row in rows]

    def _missing_refunds(
        self, session: Session, floor: datetime, cutoff: datetime, batch: int, accounts: _Accounts
    ) -> Iterable[tuple[Expected, datetime]]:
        rows = session.execute(
            select(*_REFUND_COLUMNS, Refund.updated_at)
            .where(
                Refund.status == RefundStatus.SUCCEEDED.value,
                Refund.updated_at >= floor,
                Refund.updated_at < cutoff,
                self._no_primary_entry(Refund.id),
                self._no_missing_break(Refund.id),
            )
            .order_by(Refund.updated_at)
            .limit(batch)
        ).all()
        return [(_refund_expected(row, accounts), row.updated_at) for row in rows]

    def _missing_fees(
        self, session: Session, floor: datetime, cutoff: datetime, batch: int, accounts: _Accounts
    ) -> Iterable[tuple[Expected, datetime]]:
        rows = session.execute(
            select(
                Transfer.fee_reference,
                Transfer.partner_id,
                Transfer.currency,
                Transfer.fee_amount,
                Transfer.fee_status,
                Transfer.completed_at,
            )
            .where(
                Transfer.fee_status == "booked",
                Transfer.fee_reference.is_not(None),
                Transfer.completed_at >= floor,
                Transfer.completed_at < cutoff,
                self._no_primary_entry(Transfer.fee_reference),
                self._no_missing_break(Transfer.fee_reference),
            )
            .order_by(Transfer.completed_at)
            .limit(batch)
        ).all()
        found = []
        for row in rows:
            exp = Expected(
                resource_type="fee",
                resource_id=row.fee_reference,
                partner_id=row.partner_id,
                account=accounts.settlement_account(row.partner_id),
                side=Side.DEBIT,
                amount=row.fee_amount,
                currency=row.currency,
                category=Category.FEE,
                settleable=True,
                state=row.fee_status,
            )
            found.append((exp, row.completed_at))
        return found

    def _missing_payouts(
        self, session: Session, floor: datetime, cutoff: datetime, batch: int, accounts: _Accounts
    ) -> Iterable[tuple[Expected, datetime]]:
        """Succeeded payouts whose capture was never reported on a reconciled clearing account."""
        if not accounts.clearing:
            return []
        rows = session.execute(
            select(*_PAYOUT_COLUMNS, Payout.completed_at)
            .where(
                Payout.status == PayoutStatus.SUCCEEDED.value,
                Payout.clearing_account.in_(sorted(accounts.clearing)),
                Payout.completed_at >= floor,
                Payout.completed_at < cutoff,
                self._no_primary_entry(Payout.id),
                self._no_missing_break(Payout.id),
            )
            .order_by(Payout.completed_at)
            .limit(batch)
        ).all()
        return [(_payout_expected(row, accounts), row.completed_at) for row in rows]

    def _add_missing(
        self, session: Session, exp: Expected, succeeded_at: datetime, now: datetime
    ) -> int:
        key = f"{BreakType.MISSING_ENTRY.value}:{exp.resource_type}:{exp.resource_id}"
        if session.scalar(
            select(ReconciliationBreak.id).where(ReconciliationBreak.break_key == key)
        ):
            return 0
        row = ReconciliationBreak(
            id=new_id("brk"),
            break_key=key,
            type=BreakType.MISSING_ENTRY.value,
            status="open",
            partner_id=exp.partner_id,
            settlement_date=succeeded_at.astimezone(self.policy.timezone).date(),
            resource_type=exp.resource_type,
            resource_id=exp.resource_id,
            reference=exp.resource_id,
            account_mask=mask_account(exp.account),
            expected_amount=exp.side.sign * exp.amount,
            expected_currency=exp.currency,
            details={
                "succeeded_at": rfc3339(succeeded_at),
                "sla_hours": round(self.policy.missing_entry_sla.total_seconds() / 3600, 2),
            },
            detected_at=now,
            version=1,
            updated_at=now,
        )
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:  # another worker raised it first
            return 0
        return 1

    def refresh_metrics(self) -> None:
        with self.db.read() as session:
            counts = dict(
                session.execute(
                    select(ReconciliationBreak.type, func.count())
                    .where(ReconciliationBreak.status == "open")
                    .group_by(ReconciliationBreak.type)
                ).all()
            )
        for kind in BreakType:
            metrics.RECONCILIATION_BREAKS_OPEN.labels(kind.value).set(counts.get(kind.value, 0))

    # --- crashed messages --------------------------------------------------------------------

    def resume_stalled(self, batch: int = 5) -> int:
        """Finish applying messages whose process died after storing them (a worker job)."""
        now = self.clock.now()
        with self.db.transaction() as session:
            query = (
                select(SettlementMessage)
                .where(
                    SettlementMessage.status == "applying",
                    SettlementMessage.lease_until < now,
                )
                .order_by(SettlementMessage.received_at)
                .limit(batch)
            )
            if self.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            rows = session.scalars(query).all()
            for row in rows:
                row.lease_until = now + self.policy.message_lease
            stalled = [row.id for row in rows]
            # Received only in part: the sender never got an answer and will resend.
            session.execute(
                delete(SettlementMessageChunk).where(
                    SettlementMessageChunk.message_pk.in_(
                        select(SettlementMessage.id).where(
                            SettlementMessage.status == "receiving",
                            SettlementMessage.lease_until < now - self.policy.message_lease,
                        )
                    )
                )
            )
            session.execute(
                delete(SettlementMessage).where(
                    SettlementMessage.status == "receiving",
                    SettlementMessage.lease_until < now - self.policy.message_lease,
                )
            )
        for message_pk in stalled:
            log.warning("settlement_message_resumed", message=message_pk)
            self.apply(message_pk)
        return len(stalled)

    # --- messages (operators) --------------------------------------------------------------

    def messages_page(
        self, *, cursor: str | None, limit: int, sender_id: str | None = None
    ) -> dict[str, Any]:
        query = select(SettlementMessage)
        if sender_id:
            query = query.where(SettlementMessage.sender_id == sender_id)
        with self.db.read() as session:
            return page(
                session,
                query,
                SettlementMessage.id,
                cursor=cursor,
                limit=limit,
                render=message_view,
            )

    def message_raw(self, message_pk: str) -> tuple[dict[str, Any], Iterator[bytes]]:
        """A stored message's view and its gzip bytes, streamed chunk by chunk."""
        with self.db.read() as session:
            row = session.get(SettlementMessage, message_pk)
            if row is None or row.status == "receiving":
                raise NotFound("No such settlement message", code="message_not_found")
            view = message_view(row)
        return view, stored_chunks(self.db, message_pk)

    # --- reports -----------------------------------------------------------------------------

    def report(self, on: date) -> dict[str, Any]:
        """The operator's view of one settlement date: positions, breaks, entries, messages."""
        start = datetime.combine(on, datetime.min.time(), self.policy.timezone)
        with self.db.read() as session:
            settlements = [
                settlement_view(row)
                for row in session.scalars(
                    select(Settlement)
                    .where(Settlement.settlement_date == on)
                    .order_by(Settlement.partner_id)
                )
            ]
            breaks: dict[str, dict[str, int]] = {"open": {}, "resolved": {}}
            for status, kind, count in session.execute(
                select(ReconciliationBreak.status, ReconciliationBreak.type, func.count())
                .where(ReconciliationBreak.settlement_date == on)
                .group_by(ReconciliationBreak.status, ReconciliationBreak.type)
            ):
                breaks.setdefault(status, {})[kind] = int(count)
            entries = {
                role: int(count)
                for role, count in session.execute(
                    select(SettlementEntryRow.role, func.count())
                    .where(SettlementEntryRow.settlement_date == on)
                    .group_by(SettlementEntryRow.role)
                )
            }
            messages = [
                message_view(row)
                for row in session.scalars(
                    select(SettlementMessage)
                    .where(
                        SettlementMessage.received_at >= start,
                        SettlementMessage.received_at < start + timedelta(days=1),
                    )
                    .order_by(SettlementMessage.id)
                    .limit(500)
                )
            ]
        return {
            "date": on.isoformat(),
            "settlements": settlements,
            "breaks": breaks,
            "entries": {"total": sum(entries.values()), "by_role": dict(sorted(entries.items()))},
            "messages": messages,
        }

    def count_report_rows(self, on: date) -> int:
        with self.db.read() as session:
            entries = session.scalar(
                select(func.count())
                .select_from(SettlementEntryRow)
                .where(SettlementEntryRow.settlement_date == on)
            )
            missing = session.scalar(
                select(func.count())
                .select_from(ReconciliationBreak)
                .where(
                    ReconciliationBreak.settlement_date == on,
                    ReconciliationBreak.entry_id.is_(None),
                )
            )
        return int(entries or 0) + int(missing or 0)

    def report_rows(self, on: date, page_size: int = 2000) -> Iterator[dict[str, Any]]:
        """Every entry of the date with its match and break, then entry-less breaks, streamed
        in pages by id (bounded memory however large the day)."""
        after = 0
        while True:
            with self.db.read() as session:
                rows = session.execute(
                    select(SettlementEntryRow, ReconciliationBreak)
                    .outerjoin(
                        ReconciliationBreak,
                        ReconciliationBreak.entry_id == SettlementEntryRow.id,
                    )
                    .where(
                        SettlementEntryRow.settlement_date == on,
                        SettlementEntryRow.id > after,
                    )
                    .order_by(SettlementEntryRow.id)
                    .limit(page_size)
                ).all()
                chunk = [_report_row(entry, brk) for entry, brk in rows]
            yield from chunk
            if len(rows) < page_size:
                break
            after = rows[-1][0].id
        with self.db.read() as session:
            rest = session.scalars(
                select(ReconciliationBreak)
                .where(
                    ReconciliationBreak.settlement_date == on,
                    ReconciliationBreak.entry_id.is_(None),
                )
                .order_by(ReconciliationBreak.id)
            ).all()
            chunk = [_report_row(None, brk) for brk in rest]
        yield from chunk


REPORT_COLUMNS = (
    "entry_id", "booking_date", "value_date", "account", "side", "amount", "currency",
    "reference", "core_reference", "role", "matched_type", "matched_id", "partner_id",
    "counted", "message", "break_id", "break_type", "break_status",
)  # fmt: skip


def _report_row(
    entry: SettlementEntryRow | None, brk: ReconciliationBreak | None
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(REPORT_COLUMNS)
    if entry is not None:
        row.update(
            entry_id=entry.id,
            booking_date=entry.booking_date.isoformat(),
            value_date=entry.value_date.isoformat() if entry.value_date else None,
            account=mask_account(entry.account),
            side=entry.side,
            amount=Money(entry.amount, entry.currency).value,
            currency=entry.currency,
            reference=entry.reference,
            core_reference=entry.core_reference,
            role=entry.role,
            matched_type=entry.matched_type,
            matched_id=entry.matched_id,
            partner_id=entry.partner_id,
            counted=entry.counted,
            message=entry.message_pk,
        )
    if brk is not None:
        row.update(break_id=brk.id, break_type=brk.type, break_status=brk.status)
        if entry is None:
            row.update(
                matched_type=brk.resource_type,
                matched_id=brk.resource_id,
                reference=brk.reference,
                partner_id=brk.partner_id,
                account=brk.account_mask,
            )
            if brk.expected_amount is not None and brk.expected_currency:
                row.update(
                    amount=Money(abs(brk.expected_amount), brk.expected_currency).value,
                    currency=brk.expected_currency,
                    side="credit" if brk.expected_amount >= 0 else "debit",
                )
    return row


def _repeat_key(key: str, message_pk: str, seq: int) -> str:
    return hashlib.sha256(f"{key}|{message_pk}|{seq}".encode()).hexdigest()


def _statement_date(record: Record, last_booking: date | None) -> date | None:
    """The business date a statement closes: its closing balance's date, else the end of
    its period, else its latest entry, else when it was made."""
    closing = record.balance("CLBD")
    if closing is not None and closing.on is not None:
        return closing.on
    if record.to_at is not None:
        return record.to_at.date()
    if last_booking is not None:
        return last_booking
    return record.created_at.date() if record.created_at else None


def _canonical_json(body: Any) -> bytes:
    """A JSON value in one spelling (sorted keys, no whitespace): equal content, equal bytes."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _entries_from_json(body: dict[str, Any]) -> Iterator[SettlementEntry]:
    """The JSON batch's entries as SettlementEntry (shape checked by the OpenAPI schema)."""
    errors: list[FieldError] = []
    entries = []
    for index, item in enumerate(body.get("entries") or []):
        pointer = f"/entries/{index}"
        try:
            amount = Money.from_wire(item["amount"])
        except MoneyError as exc:
            errors.append({"pointer": f"{pointer}/amount/{exc.field}", "detail": str(exc)})
            continue
        if amount.minor <= 0:
            errors.append({"pointer": f"{pointer}/amount/value", "detail": "must be positive"})
            continue
        value_date = item.get("value_date")
        entries.append(
            SettlementEntry(
                account=item["account"],
                amount=amount,
                side=Side(item["credit_debit"]),
                booking_date=date.fromisoformat(item["booking_date"]),
                value_date=date.fromisoformat(value_date) if value_date else None,
                reference=item.get("reference"),
                core_reference=item["core_reference"],
                entry_reference=item.get("entry_reference"),
                reversal=bool(item.get("reversal", False)),
                seq=index + 1,
            )
        )
    if errors:
        raise InvalidRequest(
            f"The batch failed validation ({len(errors)} error(s))",
            code="validation_failed",
            errors=errors,
        )
    yield from entries
