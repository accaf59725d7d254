"""Background loops: periodic jobs run as threads in `serve` or in `wallet-gateway worker`.

A loop calls its job, sleeps `interval` (or less if the job says there is more to do), and
stops promptly when asked. A failing job is logged and retried next round: one bad row must
not stop the dispatcher for everyone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.observability.logging import get_logger

log = get_logger("gateway.workers")


@dataclass(frozen=True)
class Job:
    """`run()` returns how much work it did; a full batch means "call me again at once"."""

    name: str
    run: Callable[[], int]
    interval_seconds: float
    batch_size: int = 0


class LoopThread(threading.Thread):
    def __init__(self, job: Job, stop: threading.Event) -> None:
        super().__init__(name=f"worker-{job.name}", daemon=True)
        self.job = job
        self.stop_event = stop

    def run(self) -> None:
        log.info("worker_started", worker=self.job.name)
        while not self.stop_event.is_set():
            try:
                done = self.job.run()
            except Exception:
                log.exception("worker_job_failed", worker=self.job.name)
                done = 0
            busy = self.job.batch_size and done >= self.job.batch_size
            if not busy:
                self.stop_event.wait(self.job.interval_seconds)
        log.info("worker_stopped", worker=self.job.name)


class Workers:
    """A set of loop threads started and stopped together."""

    def __init__(self, jobs: list[Job]) -> None:
        self.stop_event = threading.Event()
        self.threads = [LoopThread(job, self.stop_event) for job in jobs]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every loop to stop and wait for them together, `timeout` seconds in all (within
        a container's stop grace period), not `timeout` each."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [thread.job.name for thread in self.threads if thread.is_alive()]
        if stuck:
            log.warning("workers_still_running", workers=stuck)

    def wait(self) -> None:
        """Block until stopped (the `worker` command's main loop)."""
        while not self.stop_event.wait(1.0):
            pass
