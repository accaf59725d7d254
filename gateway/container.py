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
from adapters.core_banking.soap import SoapCoreBanking, core_banking_health_check
from gateway.domain.clock import Clock, SystemClock
from gateway.security.ratelimit import RateLimiter
from gateway.security.tokens import SigningKeys, TokenService
from gateway.services.partners import PartnerService
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.store.idempotency import IdempotencyKeys
from gateway.vault import Vault, VaultKeys

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
    # Adapters: wired by build_container from settings, or passed in as overrides.
    core_banking: CoreBanking | None = None
    notifier: Notifier | None = None
    health_checks: dict[str, HealthCheck] = field(default_factory=dict)
    # Background loops started by `serve` (threads) or `worker` (processes): name -> factory.
    workers: dict[str, Callable[[], Any]] = field(default_factory=dict)

    def close(self) -> None:
        close_core = getattr(self.core_banking, "close", None)
        if callable(close_core):
            close_core()
        self.db.dispose()


def build_container(settings: Settings, **overrides: Any) -> Container:
    clock: Clock = overrides.pop("clock", None) or SystemClock()
    # The SOAP adapter only connects on first use, so building it never needs the core up.
    core_banking: CoreBanking = overrides.pop(
        "core_banking", None
    ) or SoapCoreBanking.from_settings(settings)
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
        vault=overrides.pop("vault", None)
        or Vault(
            VaultKeys(
                settings.resolved_vault_keys_dir,
                create_if_missing=settings.vault_keys_dir is None,
            ),
            clock,
        ),
        core_banking=core_banking,
    )
    container.health_checks["core_banking"] = core_banking_health_check(
        core_banking, settings.core_banking_health_timeout_seconds
    )
    for name, value in overrides.items():
        if not hasattr(container, name):
            raise TypeError(f"unknown container override {name!r}")
        setattr(container, name, value)
    return container
