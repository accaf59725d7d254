from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.money import CURRENCY_EXPONENTS, Money, MoneyError


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        ("100.00", "CNY", 10000),
        ("0.01", "USD", 1),
        ("1500", "JPY", 1500),
        ("1.234", "KWD", 1234),
        ("0", "JPY", 0),
        ("12.3456", "CLF", 123456),
    ],
)
def test_parse_uses_the_currency_exponent(value: str, currency: str, minor: int) -> None:
    money = Money.parse(value, currency)
    assert money.minor == minor
    assert money.value == value


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        ("100", "CNY"),
        ("100.0", "CNY"),
        ("100.000", "CNY"),
        ("1.5", "JPY"),
        ("1.23", "KWD"),
        ("-1.00", "USD"),
        ("1e3", "USD"),
        ("01.00", "USD"),
        (" 1.00", "USD"),
        ("1,00", "EUR"),
    ],
)
def test_parse_rejects_anything_but_the_exact_form(value: str, currency: str) -> None:
    with pytest.raises(MoneyError):
        Money.parse(value, currency)


def test_floats_are_refused() -> None:
    with pytest.raises(MoneyError):
        Money.parse(1.0, "USD")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(1.5, "USD")  # type: ignore[arg-type]


def test_unknown_currency_names_the_field() -> None:
    with pytest.raises(MoneyError) as caught:
        Money.parse("1.00", "XYZ")
    assert caught.value.field == "currency"


def test_core_decimals_convert_exactly_or_not_at_all() -> None:
    assert Money.from_decimal(Decimal("12.34000"), "USD") == Money(1234, "USD")
    with pytest.raises(MoneyError):
        Money.from_decimal(Decimal("12.34500"), "USD")
    assert Money(1234, "USD").to_decimal() == Decimal("12.34")


def test_arithmetic_refuses_mixed_currencies() -> None:
    assert Money(100, "USD") + Money(50, "USD") == Money(150, "USD")
    with pytest.raises(MoneyError):
        _ = Money(100, "USD") + Money(50, "EUR")


@given(st.integers(min_value=0, max_value=10**15), st.sampled_from(sorted(CURRENCY_EXPONENTS)))
def test_wire_round_trip(minor: int, currency: str) -> None:
    money = Money(minor, currency)
    assert Money.from_wire(money.to_wire()) == money
    assert Money.from_decimal(money.to_decimal(), currency) == money
