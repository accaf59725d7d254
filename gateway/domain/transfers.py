"""Transfers: the state machine and fee arithmetic (pure).

```
created ──▶ processing ──▶ succeeded ──▶ partially_refunded ──▶ refunded
   │            │  │  └──▶ failed                    └──────────▶ reversed
   │            │  └──▶ unknown ──▶ succeeded | failed | authorized | voided
   │            └──▶ authorized ──▶ succeeded (capture) | voided | unknown (capture lost)
   ├──▶ requires_action ──▶ processing | failed
   └──▶ failed (refused before reaching the core)
```
Every change goes through `transition()`, which refuses anything not drawn above.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.domain.money import Money


class TransferStatus(StrEnum):
    CREATED = "created"
    REQUIRES_ACTION = "requires_action"  # step-up: the customer must confirm with an OTP
    PROCESSING = "processing"  # we are calling the core
    AUTHORIZED = "authorized"  # manual capture: funds held, awaiting capture or void
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the core's answer was lost: resolved by status query, never re-posted
    VOIDED = "voided"  # hold released (void or expiry)
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    REVERSED = "reversed"


S = TransferStatus
TRANSITIONS: dict[TransferStatus, frozenset[TransferStatus]] = {
    S.CREATED: frozenset({S.PROCESSING, S.REQUIRES_ACTION, S.FAILED}),
    S.REQUIRES_ACTION: frozenset({S.PROCESSING, S.FAILED}),
    S.PROCESSING: frozenset({S.SUCCEEDED, S.FAILED, S.UNKNOWN, S.AUTHORIZED}),
    S.UNKNOWN: frozenset({S.SUCCEEDED, S.FAILED, S.AUTHORIZED, S.VOIDED}),
    S.AUTHORIZED: frozenset({S.SUCCEEDED, S.VOIDED, S.UNKNOWN}),
    S.SUCCEEDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED, S.REVERSED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED, S.REVERSED}),
    S.FAILED: frozenset(),
    S.VOIDED: frozenset(),
    S.REFUNDED: frozenset(),
    S.REVERSED: frozenset(),
}
TERMINAL = frozenset(state for state, targets in TRANSITIONS.items() if not targets)
# States in which money is committed or may be: they count against consent limits.
COUNTS_AGAINST_LIMITS = frozenset(
    {
        S.PROCESSING,
        S.AUTHORIZED,
        S.SUCCEEDED,
        S.UNKNOWN,
        S.PARTIALLY_REFUNDED,
        S.REFUNDED,
        S.REQUIRES_ACTION,
    }
)


class IllegalTransition(ValueError):
    """A state change the machine does not allow (a bug or a race, never silently applied)."""


def check_transition(current: str, target: str) -> TransferStatus:
    source, destination = TransferStatus(current), TransferStatus(target)
    if destination not in TRANSITIONS[source]:
        raise IllegalTransition(f"transfer cannot go from {source} to {destination}")
    return destination


class RefundStatus(StrEnum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FeeSchedule:
    """Fixed part + a rate in parts per million of the amount, clamped to [minimum, maximum]."""

    currency: str
    fixed: int = 0
    rate_ppm: int = 0
    minimum: int = 0
    maximum: int | None = None

    def fee_for(self, amount: Money) -> Money:
        if amount.currency != self.currency:
            raise ValueError("fee schedule and amount currencies differ")
        proportional = (amount.minor * self.rate_ppm + 500_000) // 1_000_000  # half up
        fee = max(self.fixed + proportional, self.minimum)
        if self.maximum is not None:
            fee = min(fee, self.maximum)
        return Money(fee, self.currency)
