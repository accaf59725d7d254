"""The sandbox provider's books: wallets with names and balances, and disbursements.

In memory and thread-safe (one lock). Time comes from the injected clock, and a disbursement
completes lazily: whoever looks at the books after its `complete_at` (a GET, the callback
dispatcher, a test) settles it first. Tests move the clock instead of sleeping.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from gateway.domain.clock import Clock

AMOUNT = re.compile(r"^([0]|([1-9][0-9]{0,17}))([.][0-9]{0,3}[0-9])?$")


@dataclass
class Wallet:
    msisdn: str
    first_name: str
    last_name: str
    currency: str
    balance: Decimal
    walletid: str
    status: str = "active"  # active | blocked
    max_balance: Decimal | None = None

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "msisdn": self.msisdn,
            "walletid": self.walletid,
            "name": self.full_name,
            "currency": self.currency,
            "balance": f"{self.balance:f}",
            "status": self.status,
            "max_balance": f"{self.max_balance:f}" if self.max_balance is not None else None,
        }


@dataclass
class Disbursement:
    """One `POST /transactions/type/disbursement` and what became of it."""

    correlation_id: str
    server_correlation_id: str
    fingerprint: str
    body: dict[str, Any]
    amount: Decimal
    currency: str
    credit_party: tuple[str, str]
    debit_party: tuple[str, str]
    created_at: datetime
    complete_at: datetime
    callback_url: str | None
    status: str = "pending"  # pending | completed | failed
    transaction_reference: str | None = None
    error: dict[str, Any] | None = None
    modified_at: datetime | None = None
    # Injected behaviour (app.py's fault rules): fail with this error, how callbacks go.
    forced_error: dict[str, Any] | None = None
    callback_mode: str = "normal"  # normal | drop | duplicate | forged
    synchronous: bool = False  # carried out before the answer (201), no callback

    def transaction(self) -> dict[str, Any]:
        """The transaction object (GET /transactions/{ref}, success callbacks)."""
        stamp = _stamp(self.created_at)
        document: dict[str, Any] = {
            "transactionReference": self.transaction_reference,
            "creditParty": [{"key": self.credit_party[0], "value": self.credit_party[1]}],
            "debitParty": [{"key": self.debit_party[0], "value": self.debit_party[1]}],
            "type": "disbursement",
            "transactionStatus": self.status,
            "amount": self.body["amount"],
            "currency": self.currency,
            "creationDate": stamp,
            "modificationDate": _stamp(self.modified_at or self.created_at),
            "transactionReceipt": f"RCPT{(self.transaction_reference or '')[-8:].upper()}",
        }
        for key in ("requestingOrganisationTransactionReference", "descriptionText", "requestDate"):
            if key in self.body:
                document[key] = self.body[key]
        return document

    def request_state(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "serverCorrelationId": self.server_correlation_id,
            "status": self.status,
            "notificationMethod": "callback" if self.callback_url else "polling",
            "pollLimit": 100,
        }
        if self.transaction_reference:
            document["objectReference"] = self.transaction_reference
        if self.status == "pending":
            document["pendingReason"] = "processing"
        if self.error is not None:
            document["error"] = self.error
        return document


def _stamp(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


class SandboxError(Exception):
    """A GSMA errorObject answer: category, code and the HTTP status the category implies."""

    STATUS: ClassVar[dict[str, int]] = {
        "businessRule": 400,
        "validation": 400,
        "authorisation": 401,
        "identification": 404,
        "internal": 500,
        "serviceUnavailable": 503,
    }

    def __init__(self, category: str, code: str, description: str = "") -> None:
        super().__init__(description or code)
        self.category, self.code, self.description = category, code, description

    @property
    def status(self) -> int:
        return self.STATUS.get(self.category, 400)

    def to_json(self, now: datetime) -> dict[str, Any]:
        document = {
            "errorCategory": self.category,
            "errorCode": self.code,
            "errorDateTime": _stamp(now),
        }
        if self.description:
            document["errorDescription"] = self.description[:256]
        return document


def fingerprint(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class SandboxLedger:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self.wallets: dict[str, Wallet] = {}
        self.accounts: dict[tuple[str, str], Wallet] = {}  # (key, value) -> wallet
        self.disbursements: dict[str, Disbursement] = {}  # by correlation id
        self._by_server_id: dict[str, Disbursement] = {}
        self._by_reference: dict[str, Disbursement] = {}

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    # --- wallets -------------------------------------------------------------------------------

    def open_wallet(
        self,
        msisdn: str,
        first_name: str,
        last_name: str,
        *,
        currency: str = "KES",
        balance: str = "0",
        status: str = "active",
        max_balance: str | None = None,
        walletid: str | None = None,
        accountid: str | None = None,
    ) -> Wallet:
        with self._lock:
            wallet = Wallet(
                msisdn=msisdn,
                first_name=first_name,
                last_name=last_name,
                currency=currency,
                balance=Decimal(balance),
                walletid=walletid or "W" + re.sub(r"\D", "", msisdn)[-9:],
                status=status,
                max_balance=Decimal(max_balance) if max_balance is not None else None,
            )
            self.wallets[msisdn] = wallet
            self.accounts[("msisdn", msisdn)] = wallet
            self.accounts[("walletid", wallet.walletid)] = wallet
            if accountid:
                self.accounts[("accountid", accountid)] = wallet
            return wallet

    def find(self, key: str, value: str) -> Wallet | None:
        with self._lock:
            return self.accounts.get((key.lower(), value))

    # --- disbursements -------------------------------------------------------------------------

    def get(self, correlation_id: str) -> Disbursement | None:
        with self._lock:
            return self.disbursements.get(correlation_id.lower())

    def by_server_id(self, server_id: str) -> Disbursement | None:
        with self._lock:
            return self._by_server_id.get(server_id.lower())

    def by_reference(self, reference: str) -> Disbursement | None:
        with self._lock:
            return self._by_reference.get(reference)

    def create(
        self,
        correlation_id: str,
        body: dict[str, Any],
        *,
        callback_url: str | None,
        delay: timedelta,
        forced_error: dict[str, Any] | None = None,
        callback_mode: str = "normal",
        synchronous: bool = False,
    ) -> Disbursement:
        """Record an accepted disbursement (validated by the caller); it settles later."""
        credit = body["creditParty"][0]
        debit = body["debitParty"][0]
        now = self.clock.now()
        with self._lock:
            item = Disbursement(
                correlation_id=correlation_id.lower(),
                server_correlation_id=str(uuid.uuid4()),
                fingerprint=fingerprint(body),
                body=body,
                amount=Decimal(body["amount"]),
                currency=body["currency"],
                credit_party=(str(credit["key"]).lower(), str(credit["value"])),
                debit_party=(str(debit["key"]).lower(), str(debit["value"])),
                created_at=now,
                complete_at=now + delay,
                callback_url=callback_url,
                forced_error=forced_error,
                callback_mode=callback_mode,
                synchronous=synchronous,
            )
            self.disbursements[item.correlation_id] = item
            self._by_server_id[item.server_correlation_id] = item
            return item

    def due(self) -> list[Disbursement]:
        """Settle every pending disbursement whose time has come; returns those just settled."""
        now = self.clock.now()
        settled = []
        with self._lock:
            for item in self.disbursements.values():
                if item.status == "pending" and item.complete_at <= now:
                    self._settle(item, now)
                    settled.append(item)
        return settled

    def _settle(self, item: Disbursement, now: datetime) -> None:
        try:
            if item.forced_error is not None:
                raise SandboxError(
                    item.forced_error.get("errorCategory", "businessRule"),
                    item.forced_error.get("errorCode", "genericError"),
                    "injected failure",
                )
            payer = self.accounts.get(item.debit_party)
            payee = self.accounts.get(item.credit_party)
            if payer is None:
                raise SandboxError("identification", "identifierError", "unknown debit party")
            if payee is None:
                raise SandboxError("identification", "identifierError", "no such wallet")
            if payee.status != "active":
                raise SandboxError("authorisation", "requestDeclined", "the wallet is blocked")
            if item.currency != payee.currency or item.currency != payer.currency:
                raise SandboxError("validation", "currencyNotSupported")
            if payer.balance < item.amount:
                raise SandboxError("businessRule", "insufficientFunds")
            if payee.max_balance is not None and payee.balance + item.amount > payee.max_balance:
                raise SandboxError("businessRule", "maxBalanceExceeded")
        except SandboxError as error:
            item.status = "failed"
            item.error = error.to_json(now)
        else:
            payer.balance -= item.amount
            payee.balance += item.amount
            item.status = "completed"
            item.transaction_reference = "MM" + uuid.uuid4().hex[:18].upper()
            self._by_reference[item.transaction_reference] = item
        item.modified_at = now

    def reset(self) -> None:
        with self._lock:
            self.wallets.clear()
            self.accounts.clear()
            self.disbursements.clear()
            self._by_server_id.clear()
            self._by_reference.clear()


@dataclass
class CallbackRecord:
    """One callback the sandbox owes or sent (the delivery log of the admin API)."""

    correlation_id: str
    url: str
    body: bytes
    headers: dict[str, str]
    due_at: datetime
    forged: bool = False
    attempts: int = 0
    delivered: bool = False
    statuses: list[int | str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "correlation_id": self.correlation_id,
            "url": self.url,
            "forged": self.forged,
            "due_at": _stamp(self.due_at),
            "attempts": self.attempts,
            "delivered": self.delivered,
            "statuses": list(self.statuses),
        }


SEED_WALLETS: tuple[dict[str, Any], ...] = (
    {"msisdn": "+254712345601", "first_name": "Wanjiru", "last_name": "Kamau",
     "balance": "1500.00"},
    {"msisdn": "+254712345602", "first_name": "Otieno", "last_name": "Odhiambo",
     "balance": "250.00"},
    {"msisdn": "+254712345603", "first_name": "Achieng", "last_name": "Njeri",
     "balance": "0.00", "status": "blocked"},
    {"msisdn": "+254712345604", "first_name": "Kipchoge", "last_name": "Mutai",
     "balance": "9000.00", "max_balance": "10000.00"},
    {"msisdn": "+254712345605", "first_name": "Fatuma", "last_name": "Ali",
     "balance": "0.00"},
)  # fmt: skip
# The bank's float at the provider (the debit party of its disbursements).
SEED_FLOAT = {"msisdn": "+254700002999", "first_name": "Demo Bank", "last_name": "Disbursements",
              "balance": "10000000.00", "accountid": "2999"}  # fmt: skip


def seed(ledger: SandboxLedger) -> None:
    for wallet in (*SEED_WALLETS, SEED_FLOAT):
        ledger.open_wallet(**wallet)
