"""The dependency container: everything a request or worker needs, built once per process.

`build_container(settings)` wires the defaults; tests and embedders pass replacements (a frozen
clock, a simulator-backed core, a fake notifier) as keyword overrides. Handlers reach it through
`gateway.api.deps.container()`; nothing reads globals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from adapters.base import CoreBanking, Notifier
from gateway.domain.clock import Clock, SystemClock
from gateway.security.ratelimit import RateLimiter
from gateway.security.tokens import SigningKeys, TokenService
from gateway.services.events import EventService
from gateway.services.partners import PartnerService
from gateway.services.webhook_endpoints import WebhookEndpointService
from gateway.services.webhooks import WebhookOperations
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.store.idempotency import IdempotencyKeys
from gateway.vault import Vault, VaultKeys
from gateway.workers.webhooks import target_policy, webhook_jobs

# A readiness check returns None when healthy, or a short reason when not.
HealthCheck = Callable[[], str | None]


@dataclass
class Container:
    settings: Settings
    clock: Clock
    db: Database
    tokens: TokenService
    rate_limiter: RateLimiter
    idempotency: IdempotencyKeys
    partners: PartnerService
    vault: Vault
    events: EventService
    webhook_endpoints: WebhookEndpointService
    webhooks: WebhookOperations
    # Adapters: wired by build_container from settings, or passed in as overrides.
    core_banking: CoreBanking | None = None
    notifier: Notifier | None = None
    health_checks: dict[str, HealthCheck] = field(default_factory=dict)
    # Background loops started by `serve` (threads) or `worker` (processes): name -> factory.
    workers: dict[str, Callable[[], Any]] = field(default_factory=dict)

    def close(self) -> None:
        self.db.dispose()


def build_container(settings: Settings, **overrides: Any) -> Container:
    clock: Clock = overrides.pop("clock", None) or SystemClock()
    db: Database = overrides.pop("db", None) or Database.from_settings(settings)
    keys = SigningKeys(
        settings.resolved_signing_keys_dir,
        create_if_missing=settings.signing_keys_dir is None,
    )
    tokens = TokenService(
        keys,
        issuer=settings.issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.access_token_ttl_seconds,
        clock=clock,
    )
    vault = overrides.pop("vault", None) or Vault(
        VaultKeys(
            settings.resolved_vault_keys_dir,
            create_if_missing=settings.vault_keys_dir is None,
        ),
        clock,
    )
    container = Container(
        settings=settings,
        clock=clock,
        db=db,
        tokens=tokens,
        rate_limiter=overrides.pop("rate_limiter", None) or RateLimiter(settings.redis_url),
        idempotency=IdempotencyKeys(
            db,
            clock,
            ttl=timedelta(hours=settings.idempotency_ttl_hours),
            lock=timedelta(seconds=settings.idempotency_lock_seconds),
            wait_seconds=settings.idempotency_wait_seconds,
        ),
        partners=PartnerService(db, clock),
        vault=vault,
        # --- webhooks (docs/webhooks.md) ---
        events=EventService(db),
        webhook_endpoints=WebhookEndpointService(
            db,
            clock,
            vault,
            policy=target_policy(settings),
            secret_overlap=timedelta(hours=settings.webhook_secret_overlap_hours),
        ),
        webhooks=WebhookOperations(db, clock, settings),
    )
    container.workers.update(webhook_jobs(settings, db, vault, clock, container.webhooks))
    for name, value in overrides.items():
        if not hasattr(container, name):
            raise TypeError(f"unknown container override {name!r}")
        setattr(container, name, value)
    return container
