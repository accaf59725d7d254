"""Wiring of webhook delivery into background jobs: the dispatcher and its housekeeping.

`build_dispatcher` gives a dispatcher its own pooled HTTP session whose connections are vetted
by the dispatcher's SSRF policy; tests build extra dispatchers (own engine, frozen clock, seeded
random) the same way.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import requests

from adapters.http import new_session
from gateway.domain.clock import Clock
from gateway.security.ssrf import TargetPolicy
from gateway.services.webhooks import USER_AGENT, WebhookDispatcher, WebhookOperations
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.vault import Vault
from gateway.workers.runner import Job

HOUSEKEEPING_INTERVAL_SECONDS = 300.0


def target_policy(settings: Settings) -> TargetPolicy:
    return TargetPolicy(
        allow_http=settings.webhook_allow_http,
        allow_private=settings.webhook_allow_private_targets,
    )


def build_dispatcher(
    settings: Settings,
    db: Database,
    vault: Vault,
    clock: Clock,
    *,
    policy: TargetPolicy | None = None,
    rng: random.Random | None = None,
    name: str = "webhook-dispatcher",
) -> WebhookDispatcher:
    def http(guard: Callable[[str], None]) -> requests.Session:
        return new_session(
            user_agent=USER_AGENT,
            pool_size=settings.webhook_dispatch_concurrency,
            address_guard=guard,
        )

    return WebhookDispatcher(
        db,
        vault,
        clock,
        settings,
        policy=policy or target_policy(settings),
        http_factory=http,
        rng=rng,
        name=name,
    )


def webhook_jobs(
    settings: Settings, db: Database, vault: Vault, clock: Clock, operations: WebhookOperations
) -> dict[str, Callable[[], Any]]:
    """Job factories for `container.workers` (each call builds a fresh dispatcher)."""

    def dispatcher_job() -> Job:
        dispatcher = build_dispatcher(settings, db, vault, clock)
        return Job(
            "webhook-dispatcher",
            dispatcher.run_once,
            settings.webhook_dispatch_interval_seconds,
            settings.webhook_dispatch_batch_size,
        )

    def housekeeping_job() -> Job:
        return Job(
            "webhook-housekeeping",
            lambda: operations.housekeeping(1000),
            HOUSEKEEPING_INTERVAL_SECONDS,
            1000,
        )

    return {"webhook-dispatcher": dispatcher_job, "webhook-housekeeping": housekeeping_job}
