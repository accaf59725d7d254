"""Core-banking responses and failures, mapped to the gateway's types (pure code, no I/O).

Two tables live here, as data:

* `FAULTS`: the core's fault codes -> a stable partner-facing `code` and a partner-safe detail.
  The error *class* follows from the fault's category and retryable flag (`error_for_fault`).
* `classify_transport_error`: what a transport failure means for a read (retry) and for a
  posting (the outcome may be unknown: never retried, resolved with GetTransactionStatus).

Response values are read strictly: unknown statuses, amounts with more precision than their
currency, or a missing element raise `ResponseMismatch` instead of being guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

import requests
from lxml import etree
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from zeep import exceptions as zeep_errors

from adapters.base import (
    AccountStatus,
    CoreAccount,
    CoreBalance,
    CoreBankingError,
    CoreBankingRejected,
    CoreBankingUnavailable,
    HoldResult,
    OutcomeUnknown,
    PostingResult,
    StatementEntry,
    StatementPage,
    TransactionState,
    TransactionStatus,
)
from adapters.core_banking.contract import NAMESPACE
from gateway.domain.money import Money, MoneyError


class ResponseMismatch(Exception):
    """A response that does not honour the contract (missing element, unknown status...)."""


# --- faults ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultDetail:
    """The typed detail of a core-banking SOAP fault."""

    code: str
    category: str
    message: str
    retryable: bool
    field: str | None = None


# The core's business codes: (partner-facing code, partner-safe detail). Details are ours, never
# the core's message, which may quote account numbers.
FAULTS: Final[dict[str, tuple[str, str]]] = {
    "ACCOUNT_NOT_FOUND": ("account_not_found", "The bank account does not exist"),
    "ACCOUNT_INACTIVE": ("account_inactive", "The bank account is not active"),
    "DEBIT_NOT_ALLOWED": ("debit_not_allowed", "The bank account does not allow debits"),
    "CREDIT_NOT_ALLOWED": ("credit_not_allowed", "The bank account does not allow credits"),
    "INSUFFICIENT_FUNDS": ("insufficient_funds", "The bank account has insufficient funds"),
    "LIMIT_EXCEEDED": ("limit_exceeded", "The amount exceeds the bank account's limit"),
    "CURRENCY_MISMATCH": (
        "currency_mismatch",
        "The currency does not match the bank account's currency",
    ),
    "INVALID_AMOUNT": ("invalid_amount", "The amount is not valid for its currency"),
    "SAME_ACCOUNT": ("same_account", "The debit and credit accounts must differ"),
    "HOLD_NOT_FOUND": ("hold_not_found", "The hold does not exist"),
    "HOLD_NOT_ACTIVE": ("hold_not_active", "The hold was already captured or released"),
    "HOLD_EXPIRED": ("hold_expired", "The hold has expired"),
    "HOLD_AMOUNT_EXCEEDED": ("hold_amount_exceeded", "The amount exceeds the held amount"),
    "HOLD_ACCOUNT_MISMATCH": ("hold_account_mismatch", "The hold is on another account"),
    "INVALID_EXPIRY": ("invalid_expiry", "The hold expiry must be in the future"),
    "DUPLICATE_REFERENCE_MISMATCH": (
        "duplicate_reference_mismatch",
        "The reference was already used for a different request",
    ),
    "TRANSACTION_NOT_FOUND": ("transaction_not_found", "The original transaction does not exist"),
    "ALREADY_REVERSED": ("already_reversed", "The transaction was already reversed"),
    "TRANSACTION_PENDING": ("transaction_pending", "The transaction is not booked yet"),
    "INVALID_DATE_RANGE": ("invalid_date_range", "The statement date range is not valid"),
    "INVALID_PAGE_TOKEN": ("invalid_page_token", "The statement page token is not valid"),
}

# Faults that mean *we* sent something the core cannot take (contract drift, credentials,
# routing): an integration error for operators, not a refusal to show partners.
INTEGRATION_FAULTS: Final = frozenset(
    {
        "SCHEMA_VALIDATION",
        "AUTHENTICATION_FAILED",
        "SOAP_ACTION_MISMATCH",
        "MUST_UNDERSTAND",
        "UNSUPPORTED_OPERATION",
        "MALFORMED_REQUEST",
    }
)


def parse_fault_detail(detail: Any) -> FaultDetail | None:
    """Read `<detail><CoreBankingFault>` from a zeep Fault's detail element (None if absent)."""
    if not isinstance(detail, etree._Element):
        return None
    node = detail.find(f"{{{NAMESPACE}}}CoreBankingFault")
    if node is None:
        return None

    def text(name: str) -> str | None:
        value = node.findtext(f"{{{NAMESPACE}}}{name}")
        return value.strip() if value is not None else None

    code, category = text("Code"), text("Category")
    if not code or category not in ("CLIENT", "SERVER"):
        return None
    return FaultDetail(
        code=code,
        category=category,
        message=text("Message") or "",
        retryable=(text("Retryable") or "").lower() in ("true", "1"),
        field=text("Field"),
    )


def _with_core_message(error: CoreBankingError, message: str) -> CoreBankingError:
    # Kept for logs only (redacted there); never rendered to partners.
    error.core_message = message  # type: ignore[attr-defined]
    return error


def error_for_fault(
    detail: FaultDetail | None, *, faultcode: str | None, posting: bool
) -> CoreBankingError:
    """The typed error for a SOAP fault, following the contract's category/retryable rules."""
    if detail is None:
        # A fault without our typed detail: a SOAP stack or proxy in front of the core spoke.
        if faultcode and faultcode.rsplit(":", 1)[-1].startswith("Client"):
            return CoreBankingError(
                "The core banking system refused the request format",
                code="core_banking_integration_error",
                core_code="SOAP_CLIENT_FAULT",
                category="CLIENT",
            )
        if posting:
            return OutcomeUnknown(
                "The core banking system failed; the outcome of the posting is unknown",
                core_code="SOAP_SERVER_FAULT",
            )
        return CoreBankingUnavailable(
            "The core banking system failed", core_code="SOAP_SERVER_FAULT"
        )
    code, category, field = detail.code, detail.category, detail.field
    if detail.code in INTEGRATION_FAULTS:
        error = CoreBankingError(
            "The core banking system refused the gateway's request",
            code="core_banking_integration_error",
            core_code=code,
            category=category,
            field=field,
        )
    elif detail.category == "CLIENT":
        partner_code, partner_detail = FAULTS.get(
            detail.code, ("core_banking_rejected", "Refused by the core banking system")
        )
        error = CoreBankingRejected(
            partner_detail, code=partner_code, core_code=code, category=category, field=field
        )
    elif detail.retryable:
        # The contract: SERVER + Retryable means nothing was done and the same request may be
        # sent again (the adapter still never repeats a posting by itself).
        error = CoreBankingUnavailable(
            "The core banking system is temporarily unavailable",
            core_code=code,
            category=category,
            field=field,
        )
    elif posting:
        error = OutcomeUnknown(
            "The core banking system failed; the outcome of the posting is unknown",
            core_code=code,
            category=category,
            field=field,
        )
    else:
        error = CoreBankingError(
            "The core banking system failed", core_code=code, category=category, field=field
        )
    return _with_core_message(error, detail.message)


# --- transport failures ---------------------------------------------------------------------------


def _never_reached_the_core(exc: requests.ConnectionError) -> bool:
    """Connection refused, DNS failure or connect timeout: the request was not sent."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    inner = getattr(reason, "reason", None)  # urllib3 MaxRetryError.reason
    return isinstance(inner, NewConnectionError | NameResolutionError | ConnectTimeoutError)


def classify_transport_error(exc: BaseException, *, posting: bool) -> CoreBankingError:
    """The typed error for a failure after the request was handed to the transport.

    Reads get `CoreBankingUnavailable` (retryable) for anything transient. Postings get
    `OutcomeUnknown` whenever the core may have received the request: a timeout, a dropped or
    garbled response, a 5xx page from a proxy. Only when the request provably never left (no
    connection) or was refused before processing (4xx) is a posting's outcome known.
    """
    unknown = "The core banking system did not answer; the outcome of the posting is unknown"
    if isinstance(exc, requests.ConnectionError) and _never_reached_the_core(exc):
        return CoreBankingUnavailable(
            "The core banking system could not be reached", core_code="CONNECT_FAILED"
        )
    if isinstance(exc, requests.Timeout):
        if posting:
            return OutcomeUnknown(unknown, core_code="TIMEOUT")
        return CoreBankingUnavailable(
            "The core banking system did not answer in time", core_code="TIMEOUT"
        )
    if isinstance(exc, zeep_errors.TransportError):
        status = exc.status_code or 0
        if status in (408, 429):
            return CoreBankingUnavailable(
                "The core banking system is busy", core_code=f"HTTP_{status}"
            )
        if 400 <= status < 500:
            return CoreBankingError(
                "The core banking endpoint refused the request",
                code="core_banking_integration_error",
                core_code=f"HTTP_{status}",
            )
        if posting:
            return OutcomeUnknown(unknown, core_code=f"HTTP_{status}")
        return CoreBankingUnavailable(
            "The core banking system answered with an error page", core_code=f"HTTP_{status}"
        )
    if isinstance(exc, requests.RequestException):
        if posting:
            return OutcomeUnknown(unknown, core_code="CONNECTION_LOST")
        return CoreBankingUnavailable(
            "The connection to the core banking system was lost", core_code="CONNECTION_LOST"
        )
    # A response that arrived but does not honour the contract.
    if posting:
        return OutcomeUnknown(
            "The core banking system's answer could not be read; the outcome is unknown",
            core_code="BAD_RESPONSE",
        )
    return CoreBankingError(
        "The core banking system's answer could not be read", core_code="BAD_RESPONSE"
    )


# --- responses ------------------------------------------------------------------------------------

_ACCOUNT_STATUSES: Final[frozenset[str]] = frozenset({"ACTIVE", "DORMANT", "BLOCKED", "CLOSED"})
_HOLD_STATUSES: Final[frozenset[str]] = frozenset({"PLACED", "RELEASED", "CAPTURED", "EXPIRED"})
_POSTING_STATUSES: Final[frozenset[str]] = frozenset({"BOOKED", "PENDING"})
_TRANSACTION_STATUSES: Final[frozenset[str]] = frozenset(
    {"BOOKED", "PENDING", "REVERSED", "REJECTED", "NOT_FOUND"}
)


def _required(obj: Any, name: str) -> Any:
    value = getattr(obj, name, None) if obj is not None else None
    if value is None:
        raise ResponseMismatch(f"{name} is missing")
    return value


def _one_of(value: Any, allowed: frozenset[str], name: str) -> str:
    if value not in allowed:
        raise ResponseMismatch(f"{name} has an unknown value")
    return str(value)


def money(obj: Any, name: str) -> Money:
    """`<Amount Ccy="CNY">100.00000</Amount>` -> Money, refusing silent rounding."""
    amount = _required(obj, name)
    value, currency = getattr(amount, "_value_1", None), getattr(amount, "Ccy", None)
    if not isinstance(value, Decimal) or not isinstance(currency, str):
        raise ResponseMismatch(f"{name} is not an amount")
    try:
        return Money.from_decimal(value, currency)
    except MoneyError as exc:
        raise ResponseMismatch(f"{name}: {exc}") from None


def utc(value: Any, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ResponseMismatch(f"{name} is not a timestamp")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _date(value: Any, name: str) -> date:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise ResponseMismatch(f"{name} is not a date")
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ResponseMismatch(f"{name} is not a boolean")
    return value


def account(body: Any) -> CoreAccount:
    node = _required(body, "Account")
    status: AccountStatus = _one_of(  # type: ignore[assignment]
        _required(node, "Status"), _ACCOUNT_STATUSES, "Status"
    )
    return CoreAccount(
        account_number=str(_required(node, "AccountNumber")),
        holder_name=str(_required(node, "Name")),
        currency=str(_required(node, "Currency")),
        status=status,
        debit_allowed=_bool(_required(node, "DebitAllowed"), "DebitAllowed"),
        credit_allowed=_bool(_required(node, "CreditAllowed"), "CreditAllowed"),
        registered_mobile=getattr(node, "RegisteredMobile", None),
    )


def balance(body: Any) -> CoreBalance:
    available, ledger = money(body, "Available"), money(body, "Ledger")
    if available.currency != ledger.currency:
        raise ResponseMismatch("Available and Ledger currencies differ")
    return CoreBalance(
        account_number=str(_required(body, "AccountNumber")),
        available=available,
        ledger=ledger,
        as_of=utc(_required(body, "AsOf"), "AsOf"),
    )


def hold(body: Any) -> HoldResult:
    node = _required(body, "Hold")
    expires = getattr(node, "ExpiresAt", None)
    return HoldResult(
        hold_reference=str(_required(node, "HoldReference")),
        status=_one_of(_required(node, "Status"), _HOLD_STATUSES, "Status"),  # type: ignore[arg-type]
        amount=money(node, "Amount"),
        expires_at=utc(expires, "ExpiresAt") if expires is not None else None,
        replayed=_bool(_required(body, "Replayed"), "Replayed"),
    )


def posting(body: Any) -> PostingResult:
    node = _required(body, "Posting")
    status: TransactionState = _one_of(  # type: ignore[assignment]
        _required(node, "Status"), _POSTING_STATUSES, "Status"
    )
    return PostingResult(
        external_reference=str(_required(node, "ExternalReference")),
        core_reference=str(_required(node, "CoreReference")),
        status=status,
        booking_date=_date(_required(node, "BookingDate"), "BookingDate"),
        value_date=_date(_required(node, "ValueDate"), "ValueDate"),
        replayed=_bool(_required(body, "Replayed"), "Replayed"),
    )


def transaction_status(body: Any) -> TransactionStatus:
    status: TransactionState = _one_of(  # type: ignore[assignment]
        _required(body, "Status"), _TRANSACTION_STATUSES, "Status"
    )
    booked_at = getattr(body, "BookedAt", None)
    return TransactionStatus(
        external_reference=str(_required(body, "ExternalReference")),
        status=status,
        core_reference=getattr(body, "CoreReference", None),
        amount=money(body, "Amount") if getattr(body, "Amount", None) is not None else None,
        booked_at=utc(booked_at, "BookedAt") if booked_at is not None else None,
        rejection_code=getattr(body, "RejectionCode", None),
    )


def _entry(node: Any) -> StatementEntry:
    return StatementEntry(
        entry_reference=str(_required(node, "NtryRef")),
        amount=money(node, "Amt"),
        credit_debit=_one_of(  # type: ignore[arg-type]
            _required(node, "CdtDbtInd"), frozenset({"CRDT", "DBIT"}), "CdtDbtInd"
        ),
        status=_one_of(_required(node, "Sts"), frozenset({"BOOK", "PDNG"}), "Sts"),  # type: ignore[arg-type]
        booking_date=_date(_required(node, "BookgDt"), "BookgDt"),
        value_date=_date(_required(node, "ValDt"), "ValDt"),
        external_reference=getattr(node, "EndToEndId", None),
        core_reference=str(_required(node, "AcctSvcrRef")),
        description=getattr(node, "AddtlNtryInf", None) or "",
    )


def statement(body: Any) -> StatementPage:
    # zeep reads an empty <Entries/> (no Ntry in the period) as None: that is an empty page.
    entries = getattr(getattr(body, "Entries", None), "Ntry", None) or []
    return StatementPage(
        account_number=str(_required(body, "AccountNumber")),
        entries=[_entry(node) for node in entries],
        next_page_token=getattr(body, "NextPageToken", None),
    )
