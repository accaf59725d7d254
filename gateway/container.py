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
from adapters.providers.registry import ProviderRegistry
from gateway.domain.clock import Clock, SystemClock
from gateway.security.ratelimit import RateLimiter
from gateway.security.tokens import SigningKeys, TokenService
from gateway.services.events import EventService
from gateway.services.links import LinkPolicy, LinkService
from gateway.services.otp import OtpPolicy, OtpService
from gateway.services.partners import PartnerService
from gateway.services.payout_recovery import PayoutRecovery
from gateway.services.payouts import PayoutPolicy, PayoutService
from gateway.services.provider_webhooks import ProviderWebhooks, WebhookLimits
from gateway.services.settlement import SettlementPolicy, SettlementService
from gateway.services.transfer_recovery import TransferRecovery
from gateway.services.transfers import TransferPolicy, TransferService
from gateway.services.webhook_endpoints import WebhookEndpointService
from gateway.services.webhooks import WebhookOperations
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.store.idempotency import IdempotencyKeys
from gateway.vault import Vault, VaultKeys
from gateway.workers.runner import Job
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
    core_banking: CoreBanking
    notifier: Notifier
    otp: OtpService
    links: LinkService
    transfers: TransferService
    recovery: TransferRecovery
    # Payouts to wallets through provider adapters (docs/payouts.md).
    providers: ProviderRegistry
    payouts: PayoutService
    payout_recovery: PayoutRecovery
    provider_webhooks: ProviderWebhooks
    settlement: SettlementService
    health_checks: dict[str, HealthCheck] = field(default_factory=dict)
    # Background loops started by `serve` (threads) or `worker` (processes): name -> factory.
    workers: dict[str, Callable[[], Any]] = field(default_factory=dict)

    def close(self) -> None:
        close_core = getattr(self.core_banking, "close", None)
        if callable(close_core):
            close_core()
        self.providers.close()
        self.db.dispose()


def build_notifier(settings: Settings) -> Notifier:
    if settings.notifier == "http":
        from adapters.notifiers.sms_http import HttpSmsNotifier

        assert settings.sms_gateway_url is not None
        token = settings.sms_gateway_token
        return HttpSmsNotifier(
            settings.sms_gateway_url,
            token=token.get_secret_value() if token else None,
            auth=settings.sms_gateway_auth,
            sender=settings.sms_sender_id,
            timeout_seconds=settings.sms_timeout_seconds,
        )
    from adapters.notifiers.sandbox import SandboxNotifier

    return SandboxNotifier(settings.data_dir / "sandbox-sms.jsonl")


def transfer_policy(settings: Settings) -> TransferPolicy:
    from zoneinfo import ZoneInfo

    from gateway.domain.money import Money

    return TransferPolicy(
        timezone=ZoneInfo(settings.business_timezone),
        fee_income_accounts=dict(settings.fee_income_accounts),
        step_up_thresholds={
            currency: Money.parse(value, currency).minor
            for currency, value in settings.step_up_thresholds.items()
        },
        hold_max=timedelta(hours=settings.hold_max_hours),
        velocity_max=settings.risk_velocity_max,
        velocity_window=timedelta(seconds=settings.risk_velocity_window_seconds),
        suspend_after_hits=settings.risk_suspend_after_hits,
        not_found_after=timedelta(seconds=settings.recovery_not_found_after_seconds),
        stale_processing=timedelta(seconds=settings.recovery_stale_processing_seconds),
    )


def payout_policy(settings: Settings) -> PayoutPolicy:
    return PayoutPolicy(
        hold=timedelta(hours=settings.payout_hold_hours),
        poll=timedelta(seconds=settings.payout_poll_seconds),
        poll_max=timedelta(seconds=settings.payout_poll_max_seconds),
        not_found_after=timedelta(seconds=settings.payout_not_found_after_seconds),
        stale=timedelta(seconds=settings.recovery_stale_processing_seconds),
    )


def settlement_policy(settings: Settings) -> SettlementPolicy:
    from zoneinfo import ZoneInfo

    return SettlementPolicy(
        missing_entry_sla=timedelta(hours=settings.settlement_missing_entry_sla_hours),
        missing_entry_lookback=timedelta(days=settings.settlement_missing_entry_lookback_days),
        batch_size=settings.settlement_apply_batch_size,
        message_lease=timedelta(seconds=settings.settlement_message_lease_seconds),
        max_errors=settings.settlement_max_errors,
        fee_income_accounts=dict(settings.fee_income_accounts),
        clearing_accounts=dict(settings.settlement_clearing_accounts),
        timezone=ZoneInfo(settings.business_timezone),
    )


def settlement_jobs(settings: Settings, settlement: SettlementService) -> dict[str, Any]:
    """The reconciliation workers (docs/settlement.md): overdue entries, stalled messages."""
    from gateway.workers.runner import Job

    return {
        "reconciliation-missing-entries": lambda: Job(
            "reconciliation-missing-entries",
            lambda: settlement.detect_missing_entries(500),
            settings.settlement_missing_entry_interval_seconds,
            500,
        ),
        "settlement-resume": lambda: Job(
            "settlement-resume", lambda: settlement.resume_stalled(5), 30.0, 5
        ),
    }


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
    notifier: Notifier = overrides.pop("notifier", None) or build_notifier(settings)
    vault: Vault = overrides.pop("vault", None) or Vault(
        VaultKeys(
            settings.resolved_vault_keys_dir,
            create_if_missing=settings.vault_keys_dir is None,
            reload_interval=settings.vault_key_reload_seconds,
        ),
        clock,
    )
    idempotency = IdempotencyKeys(
        db,
        clock,
        ttl=timedelta(hours=settings.idempotency_ttl_hours),
        lock=timedelta(seconds=settings.idempotency_lock_seconds),
        wait_seconds=settings.idempotency_wait_seconds,
    )
    otp = OtpService(
        vault,
        clock,
        notifier,
        OtpPolicy(
            ttl=timedelta(seconds=settings.otp_ttl_seconds),
            max_attempts=settings.otp_max_attempts,
            max_sends=settings.otp_max_sends,
        ),
    )
    links = LinkService(
        db,
        clock,
        vault,
        core_banking,
        otp,
        idempotency,
        LinkPolicy(
            pending_ttl=timedelta(hours=settings.link_pending_ttl_hours),
            max_consent=timedelta(days=settings.link_max_consent_days),
            bank_name=settings.bank_name,
        ),
    )
    transfers = TransferService(
        db, clock, core_banking, links, otp, idempotency, transfer_policy(settings)
    )
    rate_limiter: RateLimiter = overrides.pop("rate_limiter", None) or RateLimiter(
        settings.redis_url
    )
    # Reads and validates every enabled provider's settings: a bad one stops start-up here.
    providers: ProviderRegistry = overrides.pop(
        "providers", None
    ) or ProviderRegistry.from_settings(settings, clock=clock)
    payouts = PayoutService(
        db, clock, core_banking, vault, providers, idempotency, payout_policy(settings)
    )
    payout_recovery = PayoutRecovery(payouts)
    container = Container(
        settings=settings,
        clock=clock,
        db=db,
        tokens=tokens,
        rate_limiter=rate_limiter,
        idempotency=idempotency,
        partners=PartnerService(db, clock),
        vault=vault,
        core_banking=core_banking,
        notifier=notifier,
        otp=otp,
        links=links,
        transfers=transfers,
        recovery=TransferRecovery(transfers),
        providers=providers,
        payouts=payouts,
        payout_recovery=payout_recovery,
        provider_webhooks=ProviderWebhooks(
            db,
            clock,
            providers,
            payouts,
            rate_limiter,
            WebhookLimits(
                rate=settings.provider_webhook_rate_limit,
                invalid_rate=settings.provider_webhook_invalid_rate_limit,
                max_bytes=settings.provider_notification_max_bytes,
            ),
        ),
        # --- settlement and reconciliation (docs/settlement.md) ---
        settlement=SettlementService(
            db, clock, settlement_policy(settings), on_transfer_reversed=transfers.reversed_by_core
        ),
        # --- webhooks (docs/webhooks.md) ---
        events=EventService(db, clock, timedelta(seconds=settings.events_settle_seconds)),
        webhook_endpoints=WebhookEndpointService(
            db,
            clock,
            vault,
            policy=target_policy(settings),
            secret_overlap=timedelta(hours=settings.webhook_secret_overlap_hours),
        ),
        webhooks=WebhookOperations(db, clock, settings),
    )
    container.health_checks["core_banking"] = core_banking_health_check(
        core_banking, settings.core_banking_health_timeout_seconds
    )
    container.workers.update(webhook_jobs(settings, db, vault, clock, container.webhooks))
    container.workers["payout-recovery"] = lambda: Job(
        "payout-recovery",
        lambda: payout_recovery.run(50),
        settings.recovery_interval_seconds,
        50,
    )
    container.workers.update(settlement_jobs(settings, container.settlement))
    for name, value in overrides.items():
        if not hasattr(container, name):
            raise TypeError(f"unknown container override {name!r}")
        setattr(container, name, value)
    return container
