"""The background jobs of this release, in one list (serve threads and `worker` use it)."""

from __future__ import annotations

from gateway.container import Container
from gateway.workers.runner import Job


def default_jobs(gateway: Container) -> list[Job]:
    jobs = [
        Job("idempotency-purge", lambda: gateway.idempotency.purge_expired(1000), 300.0, 1000),
    ]
    jobs += [factory() for factory in gateway.workers.values()]
    return jobs
