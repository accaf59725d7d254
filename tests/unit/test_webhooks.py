"""Pure parts of webhook delivery: the backoff schedule and Retry-After parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from gateway.services.webhooks import backoff_delay, retry_after_seconds


class Ceiling(random.Random):
    """Always the top of the jitter range: exposes the schedule's ceilings."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_ceilings_double_from_the_initial_delay_up_to_the_maximum() -> None:
    delays = [backoff_delay(step, initial=5, maximum=3600, rng=Ceiling()) for step in range(12)]
    assert delays == [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]


def test_full_jitter_stays_within_zero_and_the_ceiling_with_a_one_second_floor() -> None:
    rng = random.Random(42)
    for step in range(20):
        ceiling = min(3600.0, 5 * 2**step)
        samples = [backoff_delay(step, initial=5, maximum=3600, rng=rng) for _ in range(200)]
        assert all(1.0 <= s <= max(1.0, ceiling) for s in samples)
        if ceiling > 100:  # spread over the whole range, not clustered at the top
            assert min(samples) < ceiling * 0.2 and max(samples) > ceiling * 0.8


def test_huge_steps_do_not_overflow() -> None:
    assert backoff_delay(10_000, initial=5, maximum=60, rng=Ceiling()) == 60


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Wed, 01 Jan 2031 00:01:00 GMT", 60.0),
        ("Wed, 01 Jan 2031 00:00:00 GMT", 0.0),
        ("Tue, 31 Dec 2030 23:00:00 GMT", 0.0),  # in the past: no extra wait
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(header: str | None, expected: float | None) -> None:
    now = datetime(2031, 1, 1, tzinfo=UTC)
    assert retry_after_seconds(header, now) == expected
