import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.money import Money
from gateway.domain.transfers import (
    TERMINAL,
    TRANSITIONS,
    FeeSchedule,
    IllegalTransition,
    TransferStatus,
    check_transition,
)


def test_the_happy_paths_are_allowed() -> None:
    for path in (
        ["created", "processing", "succeeded", "partially_refunded", "refunded"],
        ["created", "requires_action", "processing", "unknown", "succeeded"],
        ["created", "processing", "authorized", "succeeded"],
        ["created", "processing", "authorized", "voided"],
    ):
        for current, target in itertools.pairwise(path):
            check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("succeeded", "failed"),
        ("failed", "succeeded"),
        ("unknown", "processing"),
        ("voided", "succeeded"),
        ("refunded", "partially_refunded"),
        ("created", "succeeded"),
    ],
)
def test_illegal_transitions_are_refused(current: str, target: str) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(current, target)


def test_terminal_states() -> None:
    assert {
        TransferStatus.FAILED,
        TransferStatus.VOIDED,
        TransferStatus.REFUNDED,
        TransferStatus.REVERSED,
    } == TERMINAL
    assert set(TRANSITIONS) == set(TransferStatus)


def test_fee_schedule() -> None:
    schedule = FeeSchedule("CNY", fixed=100, rate_ppm=5_000, minimum=150, maximum=5_000)
    assert schedule.fee_for(Money(10_000, "CNY")) == Money(150, "CNY")  # 1.00 + 0.50 -> min 1.50
    assert schedule.fee_for(Money(100_000, "CNY")) == Money(600, "CNY")  # 1.00 + 5.00
    assert schedule.fee_for(Money(10_000_000, "CNY")) == Money(5_000, "CNY")  # capped
    assert FeeSchedule("CNY", rate_ppm=3_500).fee_for(Money(1, "CNY")) == Money(0, "CNY")
    assert FeeSchedule("CNY", rate_ppm=5_000).fee_for(Money(100, "CNY")) == Money(
        1, "CNY"
    )  # 0.5 -> 1


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=100_000))
def test_fee_never_exceeds_bounds(amount: int, rate: int) -> None:
    schedule = FeeSchedule("USD", fixed=30, rate_ppm=rate, minimum=50, maximum=10_000)
    fee = schedule.fee_for(Money(amount, "USD")).minor
    assert 50 <= fee <= 10_000
