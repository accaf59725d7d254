"""Facets of the core-banking XSD, checked before a request is built.

zeep serialises whatever it is given (a 40-character reference, an amount with 7 decimals) and
the core would answer with a schema fault, or worse, truncate. These pure functions enforce the
same limits as `contracts/core-banking/core-banking.xsd` and raise `FacetViolation` (a
`CoreBankingRejected`) naming the field, without echoing the offending value: it may be an
account number.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from adapters.base import CoreBankingRejected
from gateway.domain.money import Money, MoneyError, exponent

ACCOUNT_NUMBER = re.compile(r"[A-Z0-9]{5,34}")
CURRENCY = re.compile(r"[A-Z]{3}")
MAX_REFERENCE = 35
MAX_TEXT = 140
MAX_TOTAL_DIGITS = 18
MAX_FRACTION_DIGITS = 5
MAX_PAGE_SIZE = 500
MAX_PAGE_TOKEN = 512
# XML 1.0 cannot carry C0 control characters other than tab, newline and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class FacetViolation(CoreBankingRejected):
    """A value the core's contract does not allow; nothing was sent."""

    default_code = "core_banking_invalid_request"
    title = "Invalid core-banking request"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail, core_code="INVALID_REQUEST", category="CLIENT", field=field)


def reference(value: object, field: str) -> str:
    """A Max35Text reference (ours: transfer ids, hold ids, message ids)."""
    if not isinstance(value, str) or not value:
        raise FacetViolation(field, f"{field} is required")
    if len(value) > MAX_REFERENCE:
        raise FacetViolation(field, f"{field} must be at most {MAX_REFERENCE} characters")
    if value != value.strip() or _CONTROL.search(value):
        raise FacetViolation(
            field, f"{field} must not contain control characters or surrounding spaces"
        )
    return value


def account_number(value: object, field: str = "AccountNumber") -> str:
    if not isinstance(value, str) or not ACCOUNT_NUMBER.fullmatch(value):
        raise FacetViolation(field, f"{field} must be 5 to 34 upper-case letters and digits")
    return value


def optional_text(value: str | None, field: str) -> str | None:
    """A Max140Text; empty means absent (the element is omitted)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise FacetViolation(field, f"{field} must be text")
    text = value.strip()
    if not text:
        return None
    if len(text) > MAX_TEXT:
        raise FacetViolation(field, f"{field} must be at most {MAX_TEXT} characters")
    if _CONTROL.search(text):
        raise FacetViolation(field, f"{field} must not contain control characters")
    return text


def positive_amount(amount: object, field: str = "Amount") -> dict[str, Any]:
    """A Money as the contract's `<Amount Ccy="CNY">100.00</Amount>` (zeep's simpleContent)."""
    if not isinstance(amount, Money):
        raise FacetViolation(field, f"{field} must be an amount of money")
    if not CURRENCY.fullmatch(amount.currency):
        raise FacetViolation(field, f"{field} currency must be an ISO 4217 code")
    try:
        digits = exponent(amount.currency)
    except MoneyError:
        raise FacetViolation(field, f"{field} currency is not an active ISO 4217 code") from None
    if digits > MAX_FRACTION_DIGITS:  # pragma: no cover - no ISO currency has more than 4
        raise FacetViolation(field, f"{field} has more decimals than the core accepts")
    if amount.minor <= 0:
        raise FacetViolation(field, f"{field} must be greater than zero")
    if len(str(amount.minor)) > MAX_TOTAL_DIGITS:
        raise FacetViolation(field, f"{field} has more than {MAX_TOTAL_DIGITS} digits")
    return {"_value_1": amount.to_decimal(), "Ccy": amount.currency}


def aware_datetime(value: object, field: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise FacetViolation(field, f"{field} must be a timezone-aware datetime")
    return value


def date_range(from_date: object, to_date: object) -> tuple[date, date]:
    for name, value in (("FromDate", from_date), ("ToDate", to_date)):
        if not isinstance(value, date) or isinstance(value, datetime):
            raise FacetViolation(name, f"{name} must be a date")
    assert isinstance(from_date, date) and isinstance(to_date, date)
    if from_date > to_date:
        raise FacetViolation("FromDate", "FromDate must not be after ToDate")
    return from_date, to_date


def page_size(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_PAGE_SIZE:
        raise FacetViolation("PageSize", f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
    return value


def page_token(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_PAGE_TOKEN:
        raise FacetViolation("PageToken", f"PageToken must be 1 to {MAX_PAGE_TOKEN} characters")
    return value
