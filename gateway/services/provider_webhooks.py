"""Inbound provider notifications (`POST|PUT /v1/providers/{provider}/webhooks`).

verify (the adapter) -> record -> dedupe by the provider's event id -> apply to the payout.

* A call that fails verification gets 401, changes nothing, and is recorded (row + metric +
  log) unless the provider's budget of refused calls is spent (then 429, metric only), so a
  flood of forgeries cannot fill the table.
* Every stored body is bounded (`GATEWAY_PROVIDER_NOTIFICATION_MAX_BYTES`); secrets in
  headers are never stored.
* An event id seen before (and handled) is acknowledged without doing anything again; one that
  could not be handled (provider unreachable for the status query) is handled again.
* Unless the adapter says a notification is authoritative (signed and complete), it is only a
  hint: the payout's status is fetched from the provider and that answer is applied.
* Notifications that are not about a payout (refunds, payments: the gateway initiates neither)
  are recorded and acknowledged, so the provider stops sending them.
* The answer is the gateway's (204, or a problem) unless the adapter declares the one its
  provider expects (`RepliesToWebhooks`: Alipay's `success`, WeChat Pay's failure JSON).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from adapters.base import (
    ProviderError,
    ProviderNotification,
    RepliesToWebhooks,
    WebhookReply,
    WebhookVerificationError,
)
from gateway.domain.clock import Clock
from gateway.domain.errors import NotFound, PayloadTooLarge, RateLimited, ServiceUnavailable
from gateway.domain.ids import new_id
from gateway.observability.logging import get_logger
from gateway.observability.metrics import PROVIDER_WEBHOOKS
from gateway.security.ratelimit import RateLimiter
from gateway.services.payouts import PayoutService, Providers
from gateway.store.db import Database
from gateway.store.tables import Payout
from gateway.store.tables import ProviderNotification as NotificationRow

log = get_logger("gateway.provider_webhooks")
# Headers kept with a stored notification (never credentials).
KEPT_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "user-agent",
        "x-correlationid",
        "x-date",
        "x-content-hash",
        "x-request-id",
        "traceparent",
        "wechatpay-serial",
        "wechatpay-timestamp",
        "wechatpay-nonce",
        # Not a secret: kept so that an operator can verify a stored notification again.
        "wechatpay-signature",
        "request-id",
    }
)
NO_SUCH_PAYOUT = "no such payout"


@dataclass(frozen=True)
class WebhookLimits:
    rate: str  # all calls, per provider
    invalid_rate: str  # refused calls recorded, per provider
    max_bytes: int


@dataclass(frozen=True)
class Acknowledgement:
    status: int
    outcome: str  # applied | duplicate | recorded


class ProviderWebhooks:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        providers: Providers,
        payouts: PayoutService,
        rate_limiter: RateLimiter,
        limits: WebhookLimits,
    ) -> None:
        self.db = db
        self.clock = clock
        self.providers = providers
        self.payouts = payouts
        self.rate_limiter = rate_limiter
        self.limits = limits

    def _record(
        self,
        provider: str,
        method: str,
        headers: dict[str, str],
        body: bytes,
        *,
        outcome: str,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> str:
        now = self.clock.now()
        row_id = new_id("pwh")
        with self.db.transaction() as session:
            session.add(
                NotificationRow(
                    id=row_id,
                    provider=provider,
                    event_id=event_id,
                    outcome=outcome,
                    reason=reason,
                    method=method.upper()[:10],
                    headers={
                        k.lower(): v[:1024] for k, v in headers.items() if k.lower() in KEPT_HEADERS
                    },
                    body=body[: self.limits.max_bytes].decode("utf-8", errors="replace"),
                    body_bytes=len(body),
                    body_sha256=hashlib.sha256(body).hexdigest(),
                    received_at=now,
                )
            )
        return row_id

    def _finish(
        self, row_id: str, outcome: str, *, payout_id: str | None, reason: str | None
    ) -> None:
        with self.db.transaction() as session:
            row = session.get(NotificationRow, row_id, with_for_update=True)
            assert row is not None
            row.outcome = outcome
            row.payout_id = payout_id
            row.reason = reason
            row.processed_at = self.clock.now()

    def receive(
        self, provider: str, method: str, headers: dict[str, str], body: bytes
    ) -> Acknowledgement:
        if provider not in self.providers:
            raise NotFound("No such provider", code="provider_not_found")
        try:
            self.rate_limiter.hit("provider_webhook", provider, self.limits.rate)
        except RateLimited:
            PROVIDER_WEBHOOKS.labels(provider, "rate_limited").inc()
            raise
        adapter = self.providers.get(provider)
        try:
            if len(body) > self.limits.max_bytes:
                raise WebhookVerificationError("body_too_large")
            notification = adapter.verify_and_parse_webhook(method, headers, body)
        except WebhookVerificationError as exc:
            self._refused(provider, method, headers, body, exc)
            if exc.reason == "body_too_large":
                raise PayloadTooLarge(
                    "The notification is too large", code="notification_too_large"
                ) from None
            raise
        return self._handle(provider, method, headers, body, notification)

    def _refused(
        self,
        provider: str,
        method: str,
        headers: dict[str, str],
        body: bytes,
        exc: WebhookVerificationError,
    ) -> None:
        try:
            self.rate_limiter.hit("provider_webhook_invalid", provider, self.limits.invalid_rate)
        except RateLimited:
            PROVIDER_WEBHOOKS.labels(provider, "rate_limited").inc()
            raise
        PROVIDER_WEBHOOKS.labels(provider, "rejected").inc()
        log.warning("provider_webhook_rejected", provider=provider, reason=exc.reason)
        self._record(provider, method, headers, body, outcome="rejected", reason=exc.reason)

    def _handle(
        self,
        provider: str,
        method: str,
        headers: dict[str, str],
        body: bytes,
        notification: ProviderNotification,
    ) -> Acknowledgement:
        with self.db.read() as session:
            seen = session.scalars(
                select(NotificationRow).where(
                    NotificationRow.provider == provider,
                    NotificationRow.event_id == notification.event_id,
                )
            ).first()
            previous = (seen.id, seen.outcome) if seen is not None else None
        if previous is not None and previous[1] != "deferred":
            # Handled already, or being handled right now by another request (if that one
            # dies, the recovery worker's polling still settles the payout).
            PROVIDER_WEBHOOKS.labels(provider, "duplicate").inc()
            if previous[1] == "ignored":
                raise NotFound("No payout matches the notification", code="payout_not_found")
            return Acknowledgement(204, "duplicate")
        if notification.kind != "payout":
            return self._record_only(provider, method, headers, body, notification)
        if previous is not None:
            row_id = previous[0]  # deferred last time: handle it now
        else:
            try:
                row_id = self._record(
                    provider,
                    method,
                    headers,
                    body,
                    outcome="received",
                    event_id=notification.event_id,
                )
            except IntegrityError:  # the same event arrived twice at once: the other one has it
                PROVIDER_WEBHOOKS.labels(provider, "duplicate").inc()
                return Acknowledgement(204, "duplicate")
        payout_id = self.payouts.find(
            provider,
            reference=notification.reference,
            idempotency_key=notification.idempotency_key,
            transaction_reference=notification.transaction_reference,
            request_id=notification.request_id,
        )
        if payout_id is None:
            self._finish(row_id, "ignored", payout_id=None, reason=NO_SUCH_PAYOUT)
            PROVIDER_WEBHOOKS.labels(provider, "ignored").inc()
            log.warning("provider_webhook_unmatched", provider=provider)
            raise NotFound("No payout matches the notification", code="payout_not_found")
        try:
            if notification.authoritative and notification.result is not None:
                self.payouts.apply(payout_id, notification.result, "provider notification")
            else:
                self.payouts.refresh(payout_id, "provider notification (status fetched)")
        except ProviderError as exc:
            # We could not ask the provider: the provider retries the notification, and the
            # recovery worker polls the payout anyway.
            self._finish(row_id, "deferred", payout_id=payout_id, reason=exc.code)
            self._poll_soon(payout_id)
            PROVIDER_WEBHOOKS.labels(provider, "deferred").inc()
            raise ServiceUnavailable(
                "The notification could not be processed now; retry later",
                code="notification_deferred",
            ) from exc
        self._finish(row_id, "applied", payout_id=payout_id, reason=None)
        PROVIDER_WEBHOOKS.labels(provider, "applied").inc()
        return Acknowledgement(204, "applied")

    def _record_only(
        self,
        provider: str,
        method: str,
        headers: dict[str, str],
        body: bytes,
        notification: ProviderNotification,
    ) -> Acknowledgement:
        """A verified notification about something other than a payout: kept for the audit
        trail and reconciliation, acknowledged, never applied."""
        try:
            row_id = self._record(
                provider, method, headers, body, outcome="received", event_id=notification.event_id
            )
        except IntegrityError:
            PROVIDER_WEBHOOKS.labels(provider, "duplicate").inc()
            return Acknowledgement(204, "duplicate")
        self._finish(row_id, "recorded", payout_id=None, reason=f"{notification.kind} notification")
        PROVIDER_WEBHOOKS.labels(provider, "recorded").inc()
        log.info("provider_webhook_recorded", provider=provider, kind=notification.kind)
        return Acknowledgement(204, "recorded")

    def reply(
        self, provider: str, *, accepted: bool, status: int, message: str
    ) -> WebhookReply | None:
        """The answer the provider's adapter wants instead of the gateway's default, if any."""
        if provider not in self.providers:
            return None
        adapter = self.providers.get(provider)
        if not isinstance(adapter, RepliesToWebhooks):
            return None
        return adapter.webhook_reply(accepted=accepted, status=status, message=message)

    def _poll_soon(self, payout_id: str) -> None:
        with self.db.transaction() as session:
            payout = session.get(Payout, payout_id, with_for_update=True)
            if payout is not None and payout.next_check_at is not None:
                payout.next_check_at = min(payout.next_check_at, self.clock.now())

    def recent(self, provider: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The latest stored notifications (operators)."""
        query = select(NotificationRow).order_by(NotificationRow.id.desc()).limit(limit)
        if provider:
            query = query.where(NotificationRow.provider == provider)
        with self.db.read() as session:
            return [
                {
                    "id": row.id,
                    "provider": row.provider,
                    "outcome": row.outcome,
                    "reason": row.reason,
                    "payout_id": row.payout_id,
                    "received_at": row.received_at.isoformat(),
                }
                for row in session.scalars(query)
            ]
