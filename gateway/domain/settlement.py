"""Settlement and reconciliation: the booked entry, break types and net positions (pure).

A `SettlementEntry` is one line of a bank statement or notification as the core booked it: one
side (credit or debit) of one posting on one account. Every ingestion format (ISO 20022
camt.053/camt.054, the JSON events batch) is mapped to it before anything is matched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from gateway.domain.money import Money


class Side(StrEnum):
    CREDIT = "credit"  # CRDT: money into the account
    DEBIT = "debit"  # DBIT: money out of the account

    @property
    def sign(self) -> int:
        return 1 if self is Side.CREDIT else -1

    @classmethod
    def from_iso(cls, code: str) -> Side:
        return {"CRDT": cls.CREDIT, "DBIT": cls.DEBIT}[code]


class BreakType(StrEnum):
    UNMATCHED_ENTRY = "unmatched_entry"  # booked, but nothing of ours explains it
    MISSING_ENTRY = "missing_entry"  # ours succeeded, the core's entry never came (SLA)
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    DUPLICATE = "duplicate"  # a second booking of one movement
    REVERSED_AFTER_SETTLEMENT = "reversed_after_settlement"


class Category(StrEnum):
    """What a counted entry is, for the partner's net position."""

    DEBIT = "debits"  # debit transfers: customer -> partner settlement account
    CREDIT = "credits"  # credit transfers: partner settlement account -> customer
    REFUND = "refunds"
    FEE = "fees"
    PAYOUT = "payouts"
    REVERSAL = "reversals"


# The figures of a position, in the order reports print them.
POSITION_FIGURES = ("debits", "credits", "refunds", "fees", "reversals")


@dataclass(frozen=True, slots=True)
class SettlementEntry:
    """One booked entry on one account (the core's view of one side of a posting)."""

    account: str
    amount: Money  # always positive; `side` says the direction
    side: Side
    booking_date: date
    value_date: date | None = None
    reference: str | None = None  # the end-to-end reference: our id (tr_, rf_, fee_, po_)
    core_reference: str | None = None  # the core's own reference (camt AcctSvcrRef)
    entry_reference: str | None = None  # the entry's id in the account (camt NtryRef)
    reversal: bool = False
    booked_at: datetime | None = None
    record_id: str | None = None  # the statement / notification it came in
    seq: int = 0  # 1-based position in its message

    @property
    def signed_minor(self) -> int:
        return self.side.sign * self.amount.minor

    def identity(self) -> str:
        """A key that is the same for the same booked entry in any message.

        The core's reference names the posting; with the account and the side it names one
        entry, so an entry notified intraday (camt.054) and listed again in the end-of-day
        statement (camt.053) is recognised as one. Without a core reference the entry's own
        reference is used, and failing that its content.
        """
        if self.core_reference:
            basis = f"core|{self.core_reference}"
        elif self.entry_reference:
            basis = f"ntry|{self.entry_reference}"
        else:
            basis = (
                f"fields|{self.reference or ''}|{self.amount.minor}|{self.amount.currency}|"
                f"{self.booking_date.isoformat()}"
            )
        text = f"{self.account}|{self.side.value}|{int(self.reversal)}|{basis}"
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Position:
    """A partner's net position for one settlement date, in minor units of one currency.

    Every figure is the signed effect on the partner's settlement account: debit transfers add,
    credits, refunds and fees take away, reversals go either way. `net` is their sum.
    """

    currency: str
    debits: int = 0
    credits: int = 0
    refunds: int = 0
    fees: int = 0
    reversals: int = 0
    entry_count: int = 0

    @property
    def net(self) -> int:
        return self.debits - self.credits - self.refunds - self.fees + self.reversals

    @classmethod
    def from_sums(cls, currency: str, sums: dict[str, tuple[int, int]]) -> Position:
        """Build from `{category: (signed sum, count)}` of counted entries.

        Credits, refunds and fees are reported as positive amounts taken from the account,
        so their signed sums (negative) are flipped.
        """

        def signed(category: Category) -> int:
            return sums.get(category.value, (0, 0))[0]

        return cls(
            currency=currency,
            debits=signed(Category.DEBIT),
            credits=-signed(Category.CREDIT),
            refunds=-signed(Category.REFUND),
            fees=-signed(Category.FEE),
            reversals=signed(Category.REVERSAL),
            entry_count=sum(count for _sum, count in sums.values()),
        )

    def figures(self) -> dict[str, int]:
        return {
            "debits": self.debits,
            "credits": self.credits,
            "refunds": self.refunds,
            "fees": self.fees,
            "reversals": self.reversals,
            "net": self.net,
        }


def mask_account(account: str | None) -> str | None:
    """`****0101`: enough for an operator to recognise the account, never the number."""
    if not account:
        return None
    return "****" + account[-4:]
