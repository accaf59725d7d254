"""Payouts: the state machine and the one decision that moves the money (pure).

```
created ──▶ processing ──▶ succeeded        (decision: capture, posting booked)
   │           │  ▲  └──▶ failed            (decision: release, hold released)
   │           ▼  │
   │         unknown ──▶ succeeded | failed
   └──▶ failed (hold refused)      └──▶ (unknown also covers an unconfirmed hold)
```

A payout's money ends in exactly one of two ways: the hold is *captured* (posted to the
provider's clearing account) or *released*. Which one is decided once (`decide`), under a row
lock, from the provider's final answer, and can never change afterwards: a late contradicting
answer is an anomaly for an operator, never a second movement of money. `succeeded` needs the
capture decision and a booked posting; `failed` after a hold needs the release decision.
"""

from __future__ import annotations

from enum import StrEnum


class PayoutStatus(StrEnum):
    CREATED = "created"  # committed; the hold is being placed
    PROCESSING = "processing"  # funds held; the provider is paying (or we settle its answer)
    UNKNOWN = "unknown"  # an answer was lost (provider or core): recovery resolves it
    SUCCEEDED = "succeeded"  # the wallet was paid and the hold captured
    FAILED = "failed"  # nothing was paid; any hold was released


class Decision(StrEnum):
    CAPTURE = "capture"
    RELEASE = "release"


S = PayoutStatus
TRANSITIONS: dict[PayoutStatus, frozenset[PayoutStatus]] = {
    S.CREATED: frozenset({S.PROCESSING, S.UNKNOWN, S.FAILED}),
    S.PROCESSING: frozenset({S.UNKNOWN, S.SUCCEEDED, S.FAILED}),
    S.UNKNOWN: frozenset({S.PROCESSING, S.SUCCEEDED, S.FAILED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
}
TERMINAL = frozenset(state for state, targets in TRANSITIONS.items() if not targets)


class IllegalTransition(ValueError):
    """A state change the machine does not allow (a bug or a race, never silently applied)."""


class DecisionConflict(ValueError):
    """The other way of ending the payout was asked for after one was decided."""

    def __init__(self, decided: Decision, wanted: Decision) -> None:
        super().__init__(f"payout already decided to {decided}, cannot {wanted}")
        self.decided = decided
        self.wanted = wanted


def check_transition(
    current: str, target: str, *, decision: str | None, hold_placed: bool
) -> PayoutStatus:
    """Validate a status change; returns the target. Raises `IllegalTransition`."""
    source, destination = PayoutStatus(current), PayoutStatus(target)
    if destination not in TRANSITIONS[source]:
        raise IllegalTransition(f"payout cannot go from {source} to {destination}")
    if destination == S.SUCCEEDED and decision != Decision.CAPTURE:
        raise IllegalTransition("a payout succeeds only by capturing its hold")
    if destination == S.FAILED and hold_placed and decision != Decision.RELEASE:
        raise IllegalTransition("a payout with a hold fails only by releasing it")
    return destination


def decide(current: str | None, wanted: Decision) -> Decision:
    """The payout's decision after asking for `wanted`: the same one again is a no-op, the
    other one raises `DecisionConflict`. Call it with the payout row locked."""
    if current is None:
        return wanted
    decided = Decision(current)
    if decided != wanted:
        raise DecisionConflict(decided, wanted)
    return decided


def outcome_of(decision: Decision) -> PayoutStatus:
    """The status a decision ends in once carried out."""
    return S.SUCCEEDED if decision == Decision.CAPTURE else S.FAILED
