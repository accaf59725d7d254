"""The background loop runner: a failing job does not stop its loop, a full batch runs again
at once, and stopping waits for all loops together within one deadline."""

from __future__ import annotations

import threading
import time

from gateway.workers.runner import Job, Workers


def test_a_failing_job_is_retried_and_a_full_batch_runs_again_at_once() -> None:
    calls: list[str] = []
    ran_again = threading.Event()

    def flaky() -> int:
        calls.append("flaky")
        if len(calls) == 1:
            raise RuntimeError("one bad round")
        ran_again.set()
        return 0

    busy_rounds = threading.Event()
    rounds = []

    def busy() -> int:
        rounds.append(1)
        if len(rounds) >= 3:
            busy_rounds.set()
        return 5  # a full batch: no sleep before the next round

    workers = Workers(
        [
            Job("flaky", flaky, interval_seconds=0.01),
            Job("busy", busy, interval_seconds=60, batch_size=5),
        ]
    )
    workers.start()
    try:
        assert ran_again.wait(5), "the loop stopped after a failing round"
        assert busy_rounds.wait(5), "a full batch waited for its interval"
    finally:
        workers.stop(timeout=5)
    assert not any(thread.is_alive() for thread in workers.threads)


def test_stop_waits_for_all_loops_within_one_deadline() -> None:
    release = threading.Event()

    def stuck() -> int:
        release.wait(30)
        return 0

    workers = Workers([Job(f"stuck-{n}", stuck, interval_seconds=0.01) for n in range(4)])
    workers.start()
    time.sleep(0.05)
    began = time.monotonic()
    workers.stop(timeout=0.5)
    waited = time.monotonic() - began
    still_running = [thread.is_alive() for thread in workers.threads]
    release.set()
    assert waited < 1.5  # one deadline for all four, not 0.5 s each
    assert all(still_running)  # reported, not waited for
