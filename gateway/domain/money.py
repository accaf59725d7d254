"""Money: integer minor units inside, exact decimal strings on the wire (ISO 4217 exponents).

Floats never enter: wire values are parsed from strings with an exact pattern, and the core's
five-fraction-digit decimals are converted with `Decimal`, refusing anything that would round.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# Active ISO 4217 codes with a minor-unit exponent other than 2. Everything else listed in
# _TWO_DECIMALS uses 2. Source: ISO 4217 amendment list (2025), table A.1.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}
_TWO_DECIMALS = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD
CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS
GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL
MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK
PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS
TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG
""".split()
CURRENCY_EXPONENTS: dict[str, int] = {**dict.fromkeys(_TWO_DECIMALS, 2), **_EXPONENTS}

_WIRE_VALUE = re.compile(r"^(0|[1-9][0-9]{0,17})(?:\.([0-9]+))?$")


class MoneyError(ValueError):
    """A value or currency that cannot be an amount of money; `field` names what was wrong."""

    def __init__(self, message: str, field: str = "value") -> None:
        super().__init__(message)
        self.field = field


def exponent(currency: str) -> int:
    """The number of minor-unit digits of an active ISO 4217 currency."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise MoneyError(f"'{currency}' is not an active ISO 4217 currency", "currency") from None


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An amount in integer minor units of one currency."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        exponent(self.currency)
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise MoneyError("amounts are whole numbers of minor units")

    @classmethod
    def parse(cls, value: str, currency: str) -> Money:
        """Parse a wire decimal string that carries exactly the currency's exponent."""
        digits = exponent(currency)
        match = _WIRE_VALUE.match(value) if isinstance(value, str) else None
        if match is None:
            raise MoneyError("amount must be a non-negative decimal string such as '100.00'")
        whole, fraction = match.group(1), match.group(2) or ""
        if len(fraction) != digits:
            example = "100" if digits == 0 else "100." + "0" * digits
            raise MoneyError(
                f"{currency} amounts have exactly {digits} decimal places (e.g. '{example}')"
            )
        return cls(int(whole + fraction), currency)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Money:
        """Parse the `{"value": "...", "currency": "..."}` object used on the API."""
        return cls.parse(data["value"], data["currency"])

    @classmethod
    def from_decimal(cls, amount: Decimal, currency: str) -> Money:
        """Convert a decimal (e.g. from the core's 5-digit amounts) without rounding."""
        scaled = amount.scaleb(exponent(currency))
        if scaled != scaled.to_integral_value():
            raise MoneyError(f"{amount} has more precision than {currency} allows")
        return cls(int(scaled), currency)

    def to_decimal(self) -> Decimal:
        return Decimal(self.minor).scaleb(-exponent(self.currency))

    @property
    def value(self) -> str:
        """The exact wire decimal string, e.g. '100.00'."""
        digits = exponent(self.currency)
        sign = "-" if self.minor < 0 else ""
        text = str(abs(self.minor)).rjust(digits + 1, "0")
        return sign + (f"{text[:-digits]}.{text[-digits:]}" if digits else text)

    def to_wire(self) -> dict[str, str]:
        return {"value": self.value, "currency": self.currency}

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}", "currency")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __str__(self) -> str:
        return f"{self.value} {self.currency}"
