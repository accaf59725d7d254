"""gateway/domain/payouts.py: the payout state machine and the one decision that moves money."""

from __future__ import annotations

import itertools

import pytest

from gateway.domain.payouts import (
    TERMINAL,
    TRANSITIONS,
    Decision,
    DecisionConflict,
    IllegalTransition,
    PayoutStatus,
    check_transition,
    decide,
    outcome_of,
)


@pytest.mark.parametrize(
    ("path", "decision"),
    [
        (["created", "processing", "succeeded"], "capture"),
        (["created", "processing", "failed"], "release"),
        (["created", "processing", "unknown", "processing", "succeeded"], "capture"),
        (["created", "unknown", "failed"], "release"),  # hold in doubt, released
        (["created", "processing", "unknown", "succeeded"], "capture"),  # lost capture found
    ],
)
def test_the_ways_a_payout_ends(path: list[str], decision: str) -> None:
    for current, target in itertools.pairwise(path):
        check_transition(current, target, decision=decision, hold_placed=True)


def test_a_refused_hold_fails_without_a_decision() -> None:
    assert check_transition("created", "failed", decision=None, hold_placed=False) == "failed"


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("succeeded", "failed"),
        ("failed", "succeeded"),
        ("succeeded", "processing"),
        ("failed", "unknown"),
        ("created", "succeeded"),
        ("processing", "created"),
    ],
)
def test_illegal_moves_are_refused(current: str, target: str) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(current, target, decision="capture", hold_placed=True)


def test_success_needs_the_capture_decision() -> None:
    for decision in (None, "release"):
        with pytest.raises(IllegalTransition, match="capturing"):
            check_transition("processing", "succeeded", decision=decision, hold_placed=True)


def test_failing_with_a_hold_needs_the_release_decision() -> None:
    for decision in (None, "capture"):
        with pytest.raises(IllegalTransition, match="releasing"):
            check_transition("processing", "failed", decision=decision, hold_placed=True)


def test_final_states_are_the_terminal_ones() -> None:
    assert {PayoutStatus.SUCCEEDED, PayoutStatus.FAILED} == TERMINAL
    assert all(TRANSITIONS[state] == frozenset() for state in TERMINAL)
    assert set(TRANSITIONS) == set(PayoutStatus)


def test_the_decision_is_taken_once() -> None:
    assert decide(None, Decision.CAPTURE) == Decision.CAPTURE
    assert decide("capture", Decision.CAPTURE) == Decision.CAPTURE  # repeating is harmless
    assert decide("release", Decision.RELEASE) == Decision.RELEASE


@pytest.mark.parametrize(("decided", "wanted"), [("capture", "release"), ("release", "capture")])
def test_never_both_capture_and_release(decided: str, wanted: str) -> None:
    with pytest.raises(DecisionConflict) as raised:
        decide(decided, Decision(wanted))
    assert (raised.value.decided, raised.value.wanted) == (decided, wanted)


def test_each_decision_has_one_outcome() -> None:
    assert outcome_of(Decision.CAPTURE) == PayoutStatus.SUCCEEDED
    assert outcome_of(Decision.RELEASE) == PayoutStatus.FAILED
