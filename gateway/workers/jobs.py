"""The background jobs of this release, in one list (serve threads and `worker` use it)."""

from __future__ import annotations

from gateway.container import Container
from gateway.workers.runner import Job


def default_jobs(gateway: Container) -> list[Job]:
    jobs = [
        Job("idempotency-purge", lambda: gateway.idempotency.purge_expired(1000), 300.0, 1000),
        Job("links-expiry", lambda: gateway.links.expire_due(200), 60.0, 200),
        Job(
            "transfer-recovery",
            lambda: gateway.recovery.run(50),
            gateway.settings.recovery_interval_seconds,
            50,
        ),
        Job("transfer-expiry", lambda: gateway.recovery.expire(50), 10.0, 50),
        Job("fee-booking", lambda: gateway.recovery.book_fees(50), 5.0, 50),
    ]
    jobs += [factory() for factory in gateway.workers.values()]
    return jobs
