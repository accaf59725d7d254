"""The simulator's ledger: accounts, holds, postings, reversals and statement entries in SQLite.

A small but honest double-entry book: every booked posting writes one debit and one credit
entry and moves two ledger balances; holds and pending debits reduce the available balance.
It enforces what a core enforces (existence, status, permissions, currency, funds, daily debit
limits, hold state) and the contract's reference rules: a replay of a reference with the same
payload returns the original result (`replayed=True`); the same reference with another payload
is `DUPLICATE_REFERENCE_MISMATCH`. `dedup=False` turns that off, like cores that book twice.

Amounts are integers of 10^-5 units (the contract's five fraction digits), so nothing rounds.
One connection guarded by a lock serves all threads; a file database survives restarts.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.domain.clock import Clock, SystemClock
from gateway.domain.money import CURRENCY_EXPONENTS

SCALE = 5  # fraction digits of the contract's amounts
CASH_ACCOUNT_PREFIX = "SIMCASH"  # internal accounts funding admin credits, one per currency

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    number TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    debit_allowed INTEGER NOT NULL,
    credit_allowed INTEGER NOT NULL,
    mobile TEXT,
    kind TEXT NOT NULL,
    ledger_units INTEGER NOT NULL,
    daily_debit_limit_units INTEGER,
    opened_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS holds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reference TEXT NOT NULL,
    core_reference TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL REFERENCES accounts(number),
    amount_units INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    description TEXT,
    fingerprint TEXT NOT NULL,
    created_at TEXT NOT NULL,
    closed_at TEXT,
    captured_units INTEGER
);
CREATE INDEX IF NOT EXISTS holds_reference ON holds(reference, id);
-- The available balance sums an account's open holds and pending postings on every debit:
-- partial indexes keep that proportional to what is open, not to the account's history.
CREATE INDEX IF NOT EXISTS holds_placed ON holds(account) WHERE status='PLACED';
CREATE TABLE IF NOT EXISTS postings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    external_reference TEXT NOT NULL,
    core_reference TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    debit_account TEXT NOT NULL REFERENCES accounts(number),
    credit_account TEXT NOT NULL REFERENCES accounts(number),
    amount_units INTEGER NOT NULL,
    currency TEXT NOT NULL,
    description TEXT,
    hold_reference TEXT,
    original_reference TEXT,
    status TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    booking_date TEXT NOT NULL,
    value_date TEXT NOT NULL,
    created_at TEXT NOT NULL,
    booked_at TEXT
);
CREATE INDEX IF NOT EXISTS postings_reference ON postings(external_reference, id);
CREATE INDEX IF NOT EXISTS postings_debit ON postings(debit_account, booking_date);
CREATE INDEX IF NOT EXISTS postings_pending ON postings(debit_account) WHERE status='PENDING';
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL REFERENCES accounts(number),
    posting_id INTEGER NOT NULL REFERENCES postings(id),
    credit_debit TEXT NOT NULL,
    amount_units INTEGER NOT NULL,
    currency TEXT NOT NULL,
    booking_date TEXT NOT NULL,
    value_date TEXT NOT NULL,
    external_reference TEXT,
    core_reference TEXT NOT NULL,
    description TEXT
);
CREATE INDEX IF NOT EXISTS entries_account ON entries(account, booking_date, id);
CREATE TABLE IF NOT EXISTS rejections (
    external_reference TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sim_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class LedgerFault(Exception):
    """A refusal or failure, rendered by the simulator as the contract's typed SOAP fault."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        category: str = "CLIENT",
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.category = category
        self.retryable = retryable


def to_units(amount: Decimal) -> int:
    scaled = amount.scaleb(SCALE)
    if scaled != scaled.to_integral_value():
        raise LedgerFault("INVALID_AMOUNT", "More than 5 fraction digits", field="Amount")
    return int(scaled)


def to_decimal(units: int) -> Decimal:
    return Decimal(units).scaleb(-SCALE).quantize(Decimal(1).scaleb(-SCALE))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Balance:
    account: str
    currency: str
    available: Decimal
    ledger: Decimal
    as_of: datetime


@dataclass(frozen=True)
class Hold:
    reference: str
    core_reference: str
    account: str
    amount: Decimal
    currency: str
    status: str
    expires_at: datetime


@dataclass(frozen=True)
class Posting:
    external_reference: str
    core_reference: str
    kind: str
    debit_account: str
    credit_account: str
    amount: Decimal
    currency: str
    status: str
    booking_date: date
    value_date: date
    booked_at: datetime | None


@dataclass(frozen=True)
class Status:
    external_reference: str
    status: str
    core_reference: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    booked_at: datetime | None = None
    rejection_code: str | None = None


@dataclass(frozen=True)
class Entry:
    entry_reference: str
    amount: Decimal
    currency: str
    credit_debit: str
    booking_date: date
    value_date: date
    core_reference: str
    external_reference: str | None
    description: str | None


class Ledger:
    """Thread-safe ledger on one SQLite connection (a file path or ':memory:')."""

    def __init__(
        self,
        path: str = ":memory:",
        *,
        clock: Clock | None = None,
        default_hold_ttl: timedelta = timedelta(days=7),
    ) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.clock = clock or SystemClock()
        self.default_hold_ttl = default_hold_ttl
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA foreign_keys=ON")
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            # Commits fsync at checkpoints, not each one: a simulator's ledger may lose its
            # last moments in a power cut; the gateway's SQLite makes the same choice.
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- helpers ------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.clock.now().astimezone(UTC)

    def _expire_holds(self, db: sqlite3.Connection, now: datetime) -> None:
        db.execute(
            "UPDATE holds SET status='EXPIRED', closed_at=? "
            "WHERE status='PLACED' AND expires_at <= ?",
            (_stamp(now), _stamp(now)),
        )

    @staticmethod
    def _account(db: sqlite3.Connection, number: str, field: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM accounts WHERE number=?", (number,)).fetchone()
        if row is None:
            raise LedgerFault("ACCOUNT_NOT_FOUND", "No such account", field=field)
        return row

    @staticmethod
    def _available(db: sqlite3.Connection, account: sqlite3.Row) -> int:
        held = db.execute(
            "SELECT COALESCE(SUM(amount_units), 0) FROM holds WHERE account=? AND status='PLACED'",
            (account["number"],),
        ).fetchone()[0]
        pending = db.execute(
            "SELECT COALESCE(SUM(amount_units), 0) FROM postings "
            "WHERE debit_account=? AND status='PENDING'",
            (account["number"],),
        ).fetchone()[0]
        return int(account["ledger_units"]) - int(held) - int(pending)

    @staticmethod
    def _check_precision(units: int, currency: str) -> None:
        digits = CURRENCY_EXPONENTS.get(currency)
        if digits is None:
            raise LedgerFault("CURRENCY_MISMATCH", "Unknown currency", field="Amount")
        if units % 10 ** (SCALE - digits):
            raise LedgerFault(
                "INVALID_AMOUNT", f"{currency} allows {digits} fraction digits", field="Amount"
            )

    @staticmethod
    def _usable(account: sqlite3.Row, field: str, *, debit: bool) -> None:
        if account["status"] != "ACTIVE":
            raise LedgerFault("ACCOUNT_INACTIVE", f"Account is {account['status']}", field=field)
        if debit and not account["debit_allowed"]:
            raise LedgerFault("DEBIT_NOT_ALLOWED", "Debits are not allowed", field=field)
        if not debit and not account["credit_allowed"]:
            raise LedgerFault("CREDIT_NOT_ALLOWED", "Credits are not allowed", field=field)

    def _core_reference(self, prefix: str, now: datetime) -> str:
        return f"{prefix}{now:%Y%m%d}{secrets.token_hex(6).upper()}"

    def _record_rejection(self, reference: str, code: str) -> None:
        """Remember a refused posting so GetTransactionStatus can answer REJECTED."""
        with self._tx() as db:
            exists = db.execute(
                "SELECT 1 FROM postings WHERE external_reference=?", (reference,)
            ).fetchone()
            if exists is None:
                db.execute(
                    "INSERT INTO rejections(external_reference, code, at) VALUES (?, ?, ?) "
                    "ON CONFLICT(external_reference) DO UPDATE SET code=excluded.code, "
                    "at=excluded.at",
                    (reference, code, _stamp(self._now())),
                )

    @staticmethod
    def _hold(row: sqlite3.Row) -> Hold:
        return Hold(
            reference=row["reference"],
            core_reference=row["core_reference"],
            account=row["account"],
            amount=to_decimal(row["amount_units"]),
            currency=row["currency"],
            status=row["status"],
            expires_at=parse_stamp(row["expires_at"]),
        )

    @staticmethod
    def _posting(row: sqlite3.Row) -> Posting:
        return Posting(
            external_reference=row["external_reference"],
            core_reference=row["core_reference"],
            kind=row["kind"],
            debit_account=row["debit_account"],
            credit_account=row["credit_account"],
            amount=to_decimal(row["amount_units"]),
            currency=row["currency"],
            status=row["status"],
            booking_date=date.fromisoformat(row["booking_date"]),
            value_date=date.fromisoformat(row["value_date"]),
            booked_at=parse_stamp(row["booked_at"]) if row["booked_at"] else None,
        )

    def _book(self, db: sqlite3.Connection, posting_id: int, now: datetime) -> None:
        """Move the balances and write both statement entries of a posting."""
        row = db.execute("SELECT * FROM postings WHERE id=?", (posting_id,)).fetchone()
        units = row["amount_units"]
        db.execute(
            "UPDATE accounts SET ledger_units = ledger_units - ? WHERE number=?",
            (units, row["debit_account"]),
        )
        db.execute(
            "UPDATE accounts SET ledger_units = ledger_units + ? WHERE number=?",
            (units, row["credit_account"]),
        )
        for account, side in ((row["debit_account"], "DBIT"), (row["credit_account"], "CRDT")):
            db.execute(
                "INSERT INTO entries(account, posting_id, credit_debit, amount_units, currency, "
                "booking_date, value_date, external_reference, core_reference, description) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    account,
                    posting_id,
                    side,
                    units,
                    row["currency"],
                    row["booking_date"],
                    row["value_date"],
                    row["external_reference"],
                    row["core_reference"],
                    row["description"],
                ),
            )
        db.execute(
            "UPDATE postings SET status='BOOKED', booked_at=? WHERE id=?",
            (_stamp(now), posting_id),
        )

    # --- reads --------------------------------------------------------------------------------

    def get_account(self, number: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._account(self._db, number, "AccountNumber"))

    def get_balance(self, number: str) -> Balance:
        with self._tx() as db:
            now = self._now()
            self._expire_holds(db, now)
            account = self._account(db, number, "AccountNumber")
            return Balance(
                account=number,
                currency=account["currency"],
                available=to_decimal(self._available(db, account)),
                ledger=to_decimal(account["ledger_units"]),
                as_of=now,
            )

    def transaction_status(self, reference: str) -> Status:
        """Postings first, then holds (PLACED is PENDING, CAPTURED BOOKED, released or
        expired REVERSED), then remembered rejections; otherwise NOT_FOUND."""
        with self._tx() as db:
            self._expire_holds(db, self._now())
            row = db.execute(
                "SELECT * FROM postings WHERE external_reference=? ORDER BY id LIMIT 1",
                (reference,),
            ).fetchone()
            if row is not None:
                return Status(
                    reference,
                    row["status"],
                    core_reference=row["core_reference"],
                    amount=to_decimal(row["amount_units"]),
                    currency=row["currency"],
                    booked_at=parse_stamp(row["booked_at"]) if row["booked_at"] else None,
                )
            hold = db.execute(
                "SELECT * FROM holds WHERE reference=? ORDER BY id LIMIT 1", (reference,)
            ).fetchone()
            if hold is not None:
                status = {
                    "PLACED": "PENDING",
                    "CAPTURED": "BOOKED",
                    "RELEASED": "REVERSED",
                    "EXPIRED": "REVERSED",
                }[hold["status"]]
                return Status(
                    reference,
                    status,
                    core_reference=hold["core_reference"],
                    amount=to_decimal(hold["amount_units"]),
                    currency=hold["currency"],
                )
            rejected = db.execute(
                "SELECT code FROM rejections WHERE external_reference=?", (reference,)
            ).fetchone()
            if rejected is not None:
                return Status(reference, "REJECTED", rejection_code=rejected["code"])
            return Status(reference, "NOT_FOUND")

    def statement(
        self,
        number: str,
        from_date: date,
        to_date: date,
        *,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> tuple[list[Entry], str | None]:
        if from_date > to_date:
            raise LedgerFault("INVALID_DATE_RANGE", "FromDate is after ToDate", field="FromDate")
        after = 0
        if page_token is not None:
            after = _read_token(page_token, number, from_date, to_date)
        with self._lock:
            self._account(self._db, number, "AccountNumber")
            rows = self._db.execute(
                "SELECT * FROM entries WHERE account=? AND booking_date BETWEEN ? AND ? "
                "AND id > ? ORDER BY id LIMIT ?",
                (number, from_date.isoformat(), to_date.isoformat(), after, page_size + 1),
            ).fetchall()
        more = len(rows) > page_size
        rows = rows[:page_size]
        entries = [
            Entry(
                entry_reference=f"NTRY{row['id']:012d}",
                amount=to_decimal(row["amount_units"]),
                currency=row["currency"],
                credit_debit=row["credit_debit"],
                booking_date=date.fromisoformat(row["booking_date"]),
                value_date=date.fromisoformat(row["value_date"]),
                core_reference=row["core_reference"],
                external_reference=row["external_reference"],
                description=row["description"],
            )
            for row in rows
        ]
        token = _make_token(number, from_date, to_date, rows[-1]["id"]) if more else None
        return entries, token

    # --- holds --------------------------------------------------------------------------------

    def place_hold(
        self,
        reference: str,
        account_number: str,
        amount: Decimal,
        currency: str,
        *,
        expires_at: datetime | None = None,
        description: str | None = None,
        dedup: bool = True,
    ) -> tuple[Hold, bool]:
        units = to_units(amount)
        fingerprint = f"{account_number}|{units}|{currency}"
        try:
            with self._tx() as db:
                now = self._now()
                self._expire_holds(db, now)
                existing = db.execute(
                    "SELECT * FROM holds WHERE reference=? ORDER BY id LIMIT 1", (reference,)
                ).fetchone()
                if existing is not None and dedup:
                    if existing["fingerprint"] != fingerprint:
                        raise LedgerFault(
                            "DUPLICATE_REFERENCE_MISMATCH",
                            "HoldReference was used for another hold",
                            field="HoldReference",
                        )
                    return self._hold(existing), True
                account = self._account(db, account_number, "AccountNumber")
                self._usable(account, "AccountNumber", debit=True)
                if account["currency"] != currency:
                    raise LedgerFault(
                        "CURRENCY_MISMATCH",
                        "Amount currency differs from the account's",
                        field="Amount",
                    )
                self._check_precision(units, currency)
                expiry = expires_at or now + self.default_hold_ttl
                if expiry <= now:
                    raise LedgerFault(
                        "INVALID_EXPIRY", "ExpiresAt is in the past", field="ExpiresAt"
                    )
                if self._available(db, account) < units:
                    raise LedgerFault(
                        "INSUFFICIENT_FUNDS", "Available balance is too low", field="Amount"
                    )
                cursor = db.execute(
                    "INSERT INTO holds(reference, core_reference, account, amount_units, "
                    "currency, status, expires_at, description, fingerprint, created_at) "
                    "VALUES (?, ?, ?, ?, ?, 'PLACED', ?, ?, ?, ?)",
                    (
                        reference,
                        self._core_reference("HLD", now),
                        account_number,
                        units,
                        currency,
                        _stamp(expiry),
                        description,
                        fingerprint,
                        _stamp(now),
                    ),
                )
                row = db.execute("SELECT * FROM holds WHERE id=?", (cursor.lastrowid,)).fetchone()
                return self._hold(row), False
        except LedgerFault as fault:
            if fault.code != "DUPLICATE_REFERENCE_MISMATCH":
                self._record_rejection(reference, fault.code)
            raise

    def release_hold(self, reference: str) -> tuple[Hold, bool]:
        with self._tx() as db:
            now = self._now()
            self._expire_holds(db, now)
            row = db.execute(
                "SELECT * FROM holds WHERE reference=? ORDER BY id LIMIT 1", (reference,)
            ).fetchone()
            if row is None:
                raise LedgerFault("HOLD_NOT_FOUND", "No such hold", field="HoldReference")
            if row["status"] == "RELEASED":
                return self._hold(row), True
            if row["status"] == "CAPTURED":
                raise LedgerFault("HOLD_NOT_ACTIVE", "The hold was captured", field="HoldReference")
            if row["status"] == "PLACED":
                db.execute(
                    "UPDATE holds SET status='RELEASED', closed_at=? WHERE id=?",
                    (_stamp(now), row["id"]),
                )
                row = db.execute("SELECT * FROM holds WHERE id=?", (row["id"],)).fetchone()
            return self._hold(row), False

    # --- postings -----------------------------------------------------------------------------

    def post_transfer(
        self,
        reference: str,
        debit_account: str,
        credit_account: str,
        amount: Decimal,
        currency: str,
        *,
        description: str | None = None,
        hold_reference: str | None = None,
        dedup: bool = True,
        pending: bool = False,
    ) -> tuple[Posting, bool]:
        units = to_units(amount)
        fingerprint = (
            f"T|{debit_account}|{credit_account}|{units}|{currency}|{hold_reference or ''}"
        )
        try:
            with self._tx() as db:
                now = self._now()
                self._expire_holds(db, now)
                if dedup:
                    existing = db.execute(
                        "SELECT * FROM postings WHERE external_reference=? ORDER BY id LIMIT 1",
                        (reference,),
                    ).fetchone()
                    if existing is not None:
                        if existing["fingerprint"] != fingerprint:
                            raise LedgerFault(
                                "DUPLICATE_REFERENCE_MISMATCH",
                                "ExternalReference was used for another transaction",
                                field="ExternalReference",
                            )
                        return self._posting(existing), True
                debit = self._account(db, debit_account, "DebitAccount")
                credit = self._account(db, credit_account, "CreditAccount")
                if debit_account == credit_account:
                    raise LedgerFault(
                        "SAME_ACCOUNT",
                        "Debit and credit accounts are the same",
                        field="CreditAccount",
                    )
                self._usable(debit, "DebitAccount", debit=True)
                self._usable(credit, "CreditAccount", debit=False)
                if debit["currency"] != currency or credit["currency"] != currency:
                    raise LedgerFault(
                        "CURRENCY_MISMATCH",
                        "Amount currency differs from an account's",
                        field="Amount",
                    )
                self._check_precision(units, currency)
                hold = None
                if hold_reference is not None:
                    hold = db.execute(
                        "SELECT * FROM holds WHERE reference=? ORDER BY id LIMIT 1",
                        (hold_reference,),
                    ).fetchone()
                    if hold is None:
                        raise LedgerFault("HOLD_NOT_FOUND", "No such hold", field="HoldReference")
                    if hold["account"] != debit_account:
                        raise LedgerFault(
                            "HOLD_ACCOUNT_MISMATCH",
                            "The hold is on another account",
                            field="HoldReference",
                        )
                    if hold["status"] == "EXPIRED":
                        raise LedgerFault(
                            "HOLD_EXPIRED", "The hold has expired", field="HoldReference"
                        )
                    if hold["status"] != "PLACED":
                        raise LedgerFault(
                            "HOLD_NOT_ACTIVE",
                            f"The hold is {hold['status']}",
                            field="HoldReference",
                        )
                    if hold["currency"] != currency:
                        raise LedgerFault(
                            "CURRENCY_MISMATCH",
                            "Amount currency differs from the hold's",
                            field="Amount",
                        )
                    if units > hold["amount_units"]:
                        raise LedgerFault(
                            "HOLD_AMOUNT_EXCEEDED",
                            "Amount is above the held amount",
                            field="Amount",
                        )
                elif debit["kind"] != "internal" and self._available(db, debit) < units:
                    raise LedgerFault(
                        "INSUFFICIENT_FUNDS", "Available balance is too low", field="Amount"
                    )
                limit = debit["daily_debit_limit_units"]
                if limit is not None:
                    spent = db.execute(
                        "SELECT COALESCE(SUM(amount_units), 0) FROM postings "
                        "WHERE debit_account=? AND booking_date=? AND kind='TRANSFER' "
                        "AND status IN ('BOOKED', 'PENDING')",
                        (debit_account, now.date().isoformat()),
                    ).fetchone()[0]
                    if spent + units > limit:
                        raise LedgerFault(
                            "LIMIT_EXCEEDED", "Daily debit limit exceeded", field="Amount"
                        )
                if hold is not None:
                    # Capture: the hold stops reserving funds; the posting takes what it needs.
                    db.execute(
                        "UPDATE holds SET status='CAPTURED', closed_at=?, captured_units=? "
                        "WHERE id=?",
                        (_stamp(now), units, hold["id"]),
                    )
                cursor = db.execute(
                    "INSERT INTO postings(external_reference, core_reference, kind, "
                    "debit_account, credit_account, amount_units, currency, description, "
                    "hold_reference, status, fingerprint, booking_date, value_date, created_at) "
                    "VALUES (?, ?, 'TRANSFER', ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?, ?, ?)",
                    (
                        reference,
                        self._core_reference("CB", now),
                        debit_account,
                        credit_account,
                        units,
                        currency,
                        description,
                        hold_reference,
                        fingerprint,
                        now.date().isoformat(),
                        now.date().isoformat(),
                        _stamp(now),
                    ),
                )
                posting_id = int(cursor.lastrowid or 0)
                if not pending:
                    self._book(db, posting_id, now)
                db.execute("DELETE FROM rejections WHERE external_reference=?", (reference,))
                row = db.execute("SELECT * FROM postings WHERE id=?", (posting_id,)).fetchone()
                return self._posting(row), False
        except LedgerFault as fault:
            if fault.code != "DUPLICATE_REFERENCE_MISMATCH":
                self._record_rejection(reference, fault.code)
            raise

    def reverse_transfer(
        self,
        reference: str,
        original_reference: str,
        *,
        reason: str | None = None,
        dedup: bool = True,
    ) -> tuple[Posting, bool]:
        fingerprint = f"R|{original_reference}"
        try:
            with self._tx() as db:
                now = self._now()
                if dedup:
                    existing = db.execute(
                        "SELECT * FROM postings WHERE external_reference=? ORDER BY id LIMIT 1",
                        (reference,),
                    ).fetchone()
                    if existing is not None:
                        if existing["fingerprint"] != fingerprint:
                            raise LedgerFault(
                                "DUPLICATE_REFERENCE_MISMATCH",
                                "ExternalReference was used for another transaction",
                                field="ExternalReference",
                            )
                        return self._posting(existing), True
                original = db.execute(
                    "SELECT * FROM postings WHERE external_reference=? AND kind='TRANSFER' "
                    "ORDER BY id LIMIT 1",
                    (original_reference,),
                ).fetchone()
                if original is None:
                    raise LedgerFault(
                        "TRANSACTION_NOT_FOUND", "No such transaction", field="OriginalReference"
                    )
                if original["status"] == "REVERSED":
                    raise LedgerFault(
                        "ALREADY_REVERSED", "The transaction is reversed", field="OriginalReference"
                    )
                if original["status"] != "BOOKED":
                    raise LedgerFault(
                        "TRANSACTION_PENDING",
                        "The transaction is not booked",
                        field="OriginalReference",
                    )
                # A reversal is forced: it may take the credited account below zero, as cores do.
                cursor = db.execute(
                    "INSERT INTO postings(external_reference, core_reference, kind, debit_account, "
                    "credit_account, amount_units, currency, description, original_reference, "
                    "status, fingerprint, booking_date, value_date, created_at) "
                    "VALUES (?, ?, 'REVERSAL', ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?, ?, ?)",
                    (
                        reference,
                        self._core_reference("RV", now),
                        original["credit_account"],
                        original["debit_account"],
                        original["amount_units"],
                        original["currency"],
                        reason or f"Reversal of {original_reference}",
                        original_reference,
                        fingerprint,
                        now.date().isoformat(),
                        now.date().isoformat(),
                        _stamp(now),
                    ),
                )
                posting_id = int(cursor.lastrowid or 0)
                self._book(db, posting_id, now)
                db.execute("UPDATE postings SET status='REVERSED' WHERE id=?", (original["id"],))
                row = db.execute("SELECT * FROM postings WHERE id=?", (posting_id,)).fetchone()
                return self._posting(row), False
        except LedgerFault as fault:
            if fault.code != "DUPLICATE_REFERENCE_MISMATCH":
                self._record_rejection(reference, fault.code)
            raise

    # --- administration (tests, demos) --------------------------------------------------------

    def open_account(
        self,
        number: str,
        *,
        name: str,
        currency: str,
        balance: Decimal = Decimal(0),
        status: str = "ACTIVE",
        debit_allowed: bool = True,
        credit_allowed: bool = True,
        mobile: str | None = None,
        kind: str = "customer",
        daily_debit_limit: Decimal | None = None,
    ) -> dict[str, Any]:
        """Open (or, for an existing number, fail) an account with an opening balance."""
        if currency not in CURRENCY_EXPONENTS:
            raise ValueError(f"unknown currency {currency}")
        if status not in ("ACTIVE", "DORMANT", "BLOCKED", "CLOSED"):
            raise ValueError(f"unknown status {status}")
        with self._tx() as db:
            if db.execute("SELECT 1 FROM accounts WHERE number=?", (number,)).fetchone():
                raise ValueError(f"account {number} exists")
            db.execute(
                "INSERT INTO accounts(number, name, currency, status, debit_allowed, "
                "credit_allowed, mobile, kind, ledger_units, daily_debit_limit_units, "
                "opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    number,
                    name,
                    currency,
                    status,
                    int(debit_allowed),
                    int(credit_allowed),
                    mobile,
                    kind,
                    to_units(balance),
                    to_units(daily_debit_limit) if daily_debit_limit is not None else None,
                    _stamp(self._now()),
                ),
            )
            return dict(db.execute("SELECT * FROM accounts WHERE number=?", (number,)).fetchone())

    def update_account(self, number: str, **changes: Any) -> dict[str, Any]:
        allowed = {"status", "debit_allowed", "credit_allowed", "mobile", "name"}
        unknown = set(changes) - allowed - {"daily_debit_limit"}
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))}")
        with self._tx() as db:
            self._account(db, number, "AccountNumber")
            for key, value in changes.items():
                if key == "daily_debit_limit":
                    value = to_units(Decimal(value)) if value is not None else None
                    key = "daily_debit_limit_units"
                elif key in ("debit_allowed", "credit_allowed"):
                    value = int(bool(value))
                elif key == "status" and value not in ("ACTIVE", "DORMANT", "BLOCKED", "CLOSED"):
                    raise ValueError(f"unknown status {value}")
                db.execute(f"UPDATE accounts SET {key}=? WHERE number=?", (value, number))  # noqa: S608
            return dict(db.execute("SELECT * FROM accounts WHERE number=?", (number,)).fetchone())

    def credit(self, number: str, amount: Decimal, *, description: str = "Cash deposit") -> Posting:
        """Deposit money from the bank's internal cash account of the currency (a real
        posting, so it appears on statements)."""
        account = self.get_account(number)
        cash = f"{CASH_ACCOUNT_PREFIX}{account['currency']}"
        with self._lock:
            if not self._db.execute("SELECT 1 FROM accounts WHERE number=?", (cash,)).fetchone():
                self.open_account(
                    cash,
                    name=f"Cash {account['currency']}",
                    currency=account["currency"],
                    kind="internal",
                )
            posting, _ = self.post_transfer(
                f"DEP{secrets.token_hex(10).upper()}",
                cash,
                number,
                amount,
                account["currency"],
                description=description,
            )
        return posting

    def book_pending(self, core_reference: str) -> Posting:
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM postings WHERE core_reference=?", (core_reference,)
            ).fetchone()
            if row is None or row["status"] != "PENDING":
                raise ValueError("no pending posting with that core reference")
            self._book(db, row["id"], self._now())
            return self._posting(
                db.execute("SELECT * FROM postings WHERE id=?", (row["id"],)).fetchone()
            )

    def reject_pending(self, core_reference: str, code: str = "INSUFFICIENT_FUNDS") -> None:
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM postings WHERE core_reference=?", (core_reference,)
            ).fetchone()
            if row is None or row["status"] != "PENDING":
                raise ValueError("no pending posting with that core reference")
            db.execute("DELETE FROM postings WHERE id=?", (row["id"],))
            if row["hold_reference"]:
                # The refused capture gives the hold back, as it was before the attempt.
                db.execute(
                    "UPDATE holds SET status='PLACED', closed_at=NULL, captured_units=NULL "
                    "WHERE reference=? AND status='CAPTURED'",
                    (row["hold_reference"],),
                )
            db.execute(
                "INSERT OR REPLACE INTO rejections(external_reference, code, at) VALUES (?, ?, ?)",
                (row["external_reference"], code, _stamp(self._now())),
            )

    def booked_entries(
        self,
        *,
        after: int = 0,
        accounts: list[str] | None = None,
        day: date | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Statement entries with their posting's kind, in booking order (camt messages).

        `after` is an entry id cursor (camt.054 "since"); `day` a booking date (camt.053).
        """
        clauses: list[str] = ["e.id > ?"]
        params: list[Any] = [after]
        if accounts is not None:
            if not accounts:
                return []
            clauses.append(f"e.account IN ({', '.join('?' * len(accounts))})")
            params += accounts
        if day is not None:
            clauses.append("e.booking_date = ?")
            params.append(day.isoformat())
        query = (
            "SELECT e.id, e.account, e.credit_debit, e.amount_units, e.currency, e.booking_date, "  # noqa: S608 - fixed clauses
            "e.value_date, e.external_reference, e.core_reference, e.description, p.kind, "
            "p.original_reference, p.booked_at FROM entries e "
            "JOIN postings p ON p.id = e.posting_id "
            f"WHERE {' AND '.join(clauses)} ORDER BY e.id"
        )
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return [dict(row) for row in rows]

    def balance_at_end_of(self, number: str, day: date) -> Decimal:
        """The account's booked (ledger) balance at the end of `day`."""
        with self._lock:
            account = self._account(self._db, number, "AccountNumber")
            later = self._db.execute(
                "SELECT COALESCE(SUM(CASE credit_debit WHEN 'CRDT' THEN amount_units "
                "ELSE -amount_units END), 0) FROM entries WHERE account=? AND booking_date > ?",
                (number, day.isoformat()),
            ).fetchone()[0]
        return to_decimal(int(account["ledger_units"]) - int(later))

    def last_entry_id(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM entries").fetchone()[0])

    def get_state(self, key: str) -> str | None:
        """Simulator bookkeeping that must survive restarts (e.g. the camt push cursor)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM sim_state WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO sim_state(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    def account_view(self, number: str) -> dict[str, Any]:
        """An account row with its current available balance (`available_units`)."""
        with self._tx() as db:
            self._expire_holds(db, self._now())
            row = self._account(db, number, "AccountNumber")
            return {**dict(row), "available_units": self._available(db, row)}

    def accounts(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._tx() as db:
            self._expire_holds(db, self._now())
            if kind:
                rows = db.execute(
                    "SELECT * FROM accounts WHERE kind=? ORDER BY number", (kind,)
                ).fetchall()
            else:
                rows = db.execute("SELECT * FROM accounts ORDER BY number").fetchall()
            return [{**dict(row), "available_units": self._available(db, row)} for row in rows]

    def postings(
        self, *, reference: str | None = None, account: str | None = None
    ) -> list[dict[str, Any]]:
        clauses, params = [], []
        if reference is not None:
            clauses.append("external_reference=?")
            params.append(reference)
        if account is not None:
            clauses.append("(debit_account=? OR credit_account=?)")
            params += [account, account]
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            query = f"SELECT * FROM postings{where} ORDER BY id"  # noqa: S608 - fixed clauses
            rows = self._db.execute(query, params).fetchall()
        return [dict(row) for row in rows]

    def holds(
        self, *, reference: str | None = None, account: str | None = None
    ) -> list[dict[str, Any]]:
        clauses, params = [], []
        if reference is not None:
            clauses.append("reference=?")
            params.append(reference)
        if account is not None:
            clauses.append("account=?")
            params.append(account)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._tx() as db:
            self._expire_holds(db, self._now())
            rows = db.execute(f"SELECT * FROM holds{where} ORDER BY id", params).fetchall()  # noqa: S608
        return [dict(row) for row in rows]

    def is_empty(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM accounts").fetchone()[0] == 0

    def reset(self) -> None:
        """Delete everything (the caller reseeds)."""
        with self._tx() as db:
            for table in ("entries", "postings", "holds", "rejections", "accounts", "sim_state"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608


def _make_token(account: str, from_date: date, to_date: date, after: int) -> str:
    raw = json.dumps(
        {"a": account, "f": from_date.isoformat(), "t": to_date.isoformat(), "after": after},
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _read_token(token: str, account: str, from_date: date, to_date: date) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        matches = (
            data["a"] == account
            and data["f"] == from_date.isoformat()
            and data["t"] == to_date.isoformat()
        )
        after = int(data["after"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        matches, after = False, 0
    if not matches or after < 0:
        raise LedgerFault(
            "INVALID_PAGE_TOKEN", "PageToken does not belong to this query", field="PageToken"
        )
    return after
