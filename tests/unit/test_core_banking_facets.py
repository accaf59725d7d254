"""XSD facets enforced before a core-banking request is built (adapters/core_banking/facets.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from adapters.base import CoreBankingRejected
from adapters.core_banking import facets
from gateway.domain.money import Money


def test_references_are_max35text() -> None:
    assert facets.reference("tr_01j9z3abcdefghjkmnpqrstvwx", "ExternalReference")
    assert facets.reference("x" * 35, "ExternalReference") == "x" * 35
    for bad in ("", "x" * 36, " padded", "line\x01break", None, 42):
        with pytest.raises(facets.FacetViolation) as caught:
            facets.reference(bad, "ExternalReference")
        assert caught.value.field == "ExternalReference"
        assert caught.value.core_code == "INVALID_REQUEST"


def test_a_facet_violation_is_a_rejection_that_never_echoes_the_value() -> None:
    with pytest.raises(CoreBankingRejected) as caught:
        facets.account_number("12345678901234567890123456789012345678", "DebitAccount")
    assert "1234567890" not in caught.value.detail
    assert caught.value.field == "DebitAccount"
    assert caught.value.code == "core_banking_invalid_request"


@pytest.mark.parametrize("number", ["12345", "6222020000000001", "GB82WEST12345698765432"])
def test_account_numbers_accepted(number: str) -> None:
    assert facets.account_number(number) == number


@pytest.mark.parametrize("number", ["1234", "6222-0200", "gb82west1234", "X" * 35, ""])
def test_account_numbers_refused(number: str) -> None:
    with pytest.raises(facets.FacetViolation):
        facets.account_number(number)


def test_amounts_become_ccy_attributed_decimals() -> None:
    assert facets.positive_amount(Money.parse("100.50", "CNY")) == {
        "_value_1": Decimal("100.50"),
        "Ccy": "CNY",
    }
    assert facets.positive_amount(Money.parse("100", "JPY"))["_value_1"] == Decimal("100")
    assert facets.positive_amount(Money.parse("1.234", "KWD"))["_value_1"] == Decimal("1.234")


@pytest.mark.parametrize(
    "amount",
    [Money(0, "CNY"), Money(-1, "CNY"), Money(10**18, "CNY"), "100.00", Decimal("1")],
)
def test_amounts_refused(amount: object) -> None:
    with pytest.raises(facets.FacetViolation) as caught:
        facets.positive_amount(amount)
    assert caught.value.field == "Amount"


def test_eighteen_digits_is_the_largest_amount() -> None:
    assert facets.positive_amount(Money(10**18 - 1, "CNY"))["_value_1"] == Decimal(
        "9999999999999999.99"
    )


def test_optional_texts_are_trimmed_limited_and_empty_means_absent() -> None:
    assert facets.optional_text(None, "Description") is None
    assert facets.optional_text("   ", "Description") is None
    assert facets.optional_text(" top-up ", "Description") == "top-up"
    with pytest.raises(facets.FacetViolation):
        facets.optional_text("x" * 141, "Description")
    with pytest.raises(facets.FacetViolation):
        facets.optional_text("bell\x07", "Description")


def test_datetimes_must_be_aware() -> None:
    aware = datetime(2025, 1, 1, tzinfo=UTC)
    assert facets.aware_datetime(aware, "ExpiresAt") is aware
    with pytest.raises(facets.FacetViolation):
        facets.aware_datetime(datetime(2025, 1, 1), "ExpiresAt")


def test_statement_paging_facets() -> None:
    assert facets.date_range(date(2025, 1, 1), date(2025, 1, 31)) == (
        date(2025, 1, 1),
        date(2025, 1, 31),
    )
    with pytest.raises(facets.FacetViolation) as caught:
        facets.date_range(date(2025, 2, 1), date(2025, 1, 31))
    assert caught.value.field == "FromDate"
    with pytest.raises(facets.FacetViolation):
        facets.date_range(datetime(2025, 1, 1, tzinfo=UTC), date(2025, 1, 31))
    assert facets.page_size(500) == 500
    for bad_size in (0, 501, True, "10"):
        with pytest.raises(facets.FacetViolation):
            facets.page_size(bad_size)
    assert facets.page_token(None) is None
    with pytest.raises(facets.FacetViolation):
        facets.page_token("x" * 513)
