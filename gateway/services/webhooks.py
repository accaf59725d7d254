"""Webhook delivery: the dispatcher, its retry schedule, operator replay and housekeeping.

How a delivery travels (`webhook_deliveries`, one row per event and endpoint, queued by
`record_event` in the event's own transaction):

1. **Claim.** A short transaction takes up to a batch of due rows (`FOR UPDATE SKIP LOCKED` on
   PostgreSQL, so any number of dispatchers share the queue without taking the same row; on
   SQLite the write transaction itself admits one claimer at a time). Each claimed row gets a
   fresh `claim_token`, its attempt number, and `next_attempt_at` moved to the end of the lease:
   if this dispatcher dies, the row simply becomes due again when the lease runs out.
2. **Send**, outside any transaction: the SSRF policy is re-checked (DNS may have changed), the
   canonical envelope bytes are signed (Standard Webhooks, every live secret) and POSTed with
   short timeouts and no redirects. A dispatcher never starts an attempt its lease cannot cover.
3. **Record** in one transaction: the attempt row (unique per delivery and number), then the
   delivery's new state, but only if the claim token is still ours. 2xx is delivered; anything
   else is retried with exponential backoff and full jitter until the retry window (about
   three days) is over, then the delivery is `failed` and waits for an operator's replay.
   Endpoint health is tracked on the way: persistent failures mark it `failing` and notify the
   operator (audit entry, `webhook_endpoint.failing` event, metric and log); one success
   recovers it.

Deliveries of a disabled endpoint are held (never sent, never expired) and resume when it is
enabled again; those of a deleted endpoint are cancelled.
"""

from __future__ import annotations

import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from gateway.domain.clock import Clock, rfc3339
from gateway.domain.errors import InvalidRequest, NotFound
from gateway.domain.ids import new_id
from gateway.observability import metrics
from gateway.observability.context import outgoing_headers
from gateway.observability.logging import get_logger
from gateway.security.ssrf import TargetPolicy, TargetRejected
from gateway.security.webhook_signing import delivery_headers
from gateway.services.webhook_endpoints import SECRET_PURPOSE, operator_view
from gateway.settings import Settings
from gateway.store.audit import record_audit
from gateway.store.db import Database
from gateway.store.events import envelope_bytes, new_delivery, record_event
from gateway.store.pagination import page
from gateway.store.tables import (
    Event,
    VaultEntry,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from gateway.vault import Vault

log = get_logger("gateway.webhooks")

SYSTEM_ACTOR = "system:webhook-dispatcher"
USER_AGENT = "wallet-gateway-webhooks/1"
# A claim must still have this much lease left, beyond the request timeouts, to start sending.
LEASE_MARGIN = timedelta(seconds=5)
_URL_IN_ERROR = re.compile(r"(url: )\S+|https?://\S+")
TERMINAL = ("delivered", "failed", "cancelled")


def backoff_delay(step: int, *, initial: float, maximum: float, rng: random.Random) -> float:
    """Seconds before the retry after the `step`-th consecutive failure (0-based).

    Exponential backoff with full jitter: uniform in [0, min(maximum, initial * 2^step)], with
    a floor of one second so a burst of failures cannot turn into a hot loop.
    """
    ceiling = min(maximum, initial * (2.0 ** min(step, 62)))
    return max(1.0, rng.uniform(0.0, ceiling))


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A `Retry-After` header (seconds or HTTP date) as seconds from now, if it parses."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - now).total_seconds())


@dataclass(frozen=True)
class Claimed:
    """One claimed delivery with everything needed to send it (secrets only in memory)."""

    delivery_id: str
    claim_token: str
    attempt: int
    event_id: str
    event_type: str
    event_created_at: datetime
    endpoint_id: str
    partner_id: str
    url: str
    body: bytes
    secrets: tuple[str, ...]
    lease_expires_at: datetime

    def __repr__(self) -> str:  # never print the secrets
        return f"Claimed({self.delivery_id}, attempt={self.attempt}, endpoint={self.endpoint_id})"


@dataclass(frozen=True)
class AttemptResult:
    outcome: str  # delivered | http_error | timeout | connection_error | blocked | error
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    response_body: str | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"


def _safe_error(exc: BaseException) -> str:
    """An error message for operators without the URL (its path/query may hold credentials)."""
    message = _URL_IN_ERROR.sub(lambda m: (m.group(1) or "") + "<url>", str(exc))
    return f"{type(exc).__name__}: {message}"[:300]


class WebhookDispatcher:
    """Claims due deliveries, sends them, records the outcome. Safe to run many in parallel."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        clock: Clock,
        settings: Settings,
        *,
        policy: TargetPolicy,
        http_factory: Callable[[Callable[[str], None]], requests.Session],
        rng: random.Random | None = None,
        name: str = "webhook-dispatcher",
    ) -> None:
        self.db = db
        self.vault = vault
        self.clock = clock
        self.settings = settings
        self.policy = policy
        self.rng = rng or random.SystemRandom()
        self.name = name
        self.http = http_factory(self._guard)
        self.lease = timedelta(seconds=settings.webhook_lease_seconds)
        self.window = timedelta(hours=settings.webhook_retry_window_hours)
        self.timeouts = (
            settings.webhook_connect_timeout_seconds,
            settings.webhook_read_timeout_seconds,
        )
        self._rng_lock = threading.Lock()
        self._metrics_refreshed = 0.0
        # Endpoints this dispatcher saw time out: the rest of its batch for them is given back.
        self._paused: dict[str, datetime] = {}
        self._paused_lock = threading.Lock()

    def _guard(self, address: str) -> None:
        """Connection-level SSRF guard: the address actually connected to must be allowed."""
        self.policy.check_address(address)

    # --- the loop ------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim one batch, deliver it, record the outcomes; returns how many were claimed."""
        self._refresh_metrics()
        claimed = self.claim(self.settings.webhook_dispatch_batch_size)
        if not claimed:
            return 0
        workers = min(self.settings.webhook_dispatch_concurrency, len(claimed))
        if workers == 1:
            for job in claimed:
                self.process(job)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix=self.name) as pool:
                for future in [pool.submit(self.process, job) for job in claimed]:
                    future.result()
        return len(claimed)

    def process(self, job: Claimed) -> AttemptResult | None:
        """Send one claimed delivery and record it (None if it was given back untried)."""
        now = self.clock.now()
        with self._paused_lock:
            paused_until = self._paused.get(job.endpoint_id)
        if paused_until is not None and paused_until > now:
            self.release(job, until=paused_until)
            return None
        if now + timedelta(seconds=sum(self.timeouts)) + LEASE_MARGIN > job.lease_expires_at:
            self.release(job)
            return None
        try:
            result = self.send(job)
        except Exception as exc:  # a bug must not lose the claim silently: record it as an error
            log.exception("webhook_send_crashed", delivery_id=job.delivery_id)
            result = AttemptResult("error", self.clock.now(), 0, error=_safe_error(exc))
        self.record(job, result)
        return result

    # --- 1. claim ------------------------------------------------------------------------------

    def claim(self, limit: int) -> list[Claimed]:
        now = self.clock.now()
        lease_until = now + self.lease
        with self.db.transaction() as session:
            query = (
                select(WebhookDelivery)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                    WebhookEndpoint.enabled.is_(True),
                    WebhookEndpoint.deleted_at.is_(None),
                    or_(
                        WebhookEndpoint.paused_until.is_(None),
                        WebhookEndpoint.paused_until <= now,
                    ),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            )
            if self.db.is_postgres:
                query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
            deliveries = session.scalars(query).all()
            if not deliveries:
                return []
            events = {
                e.id: e
                for e in session.scalars(
                    select(Event).where(Event.id.in_({d.event_id for d in deliveries}))
                )
            }
            endpoints = {
                e.id: e
                for e in session.scalars(
                    select(WebhookEndpoint).where(
                        WebhookEndpoint.id.in_({d.endpoint_id for d in deliveries})
                    )
                )
            }
            keys = {eid: self._live_secrets(session, ep, now) for eid, ep in endpoints.items()}
            claimed = []
            for delivery in deliveries:
                if delivery.claim_token is not None:
                    log.warning(
                        "webhook_claim_expired",
                        delivery_id=delivery.id,
                        attempt=delivery.attempts,
                    )
                delivery.claim_token = secrets.token_hex(16)
                delivery.attempts += 1
                delivery.lease_expires_at = lease_until
                delivery.next_attempt_at = lease_until
                delivery.updated_at = now
                event = events[delivery.event_id]
                endpoint = endpoints[delivery.endpoint_id]
                claimed.append(
                    Claimed(
                        delivery_id=delivery.id,
                        claim_token=delivery.claim_token,
                        attempt=delivery.attempts,
                        event_id=event.id,
                        event_type=event.type,
                        event_created_at=event.created_at,
                        endpoint_id=endpoint.id,
                        partner_id=delivery.partner_id,
                        url=endpoint.url,
                        body=envelope_bytes(event),
                        secrets=keys[endpoint.id],
                        lease_expires_at=lease_until,
                    )
                )
            return claimed

    def _live_secrets(
        self, session: Session, endpoint: WebhookEndpoint, now: datetime
    ) -> tuple[str, ...]:
        """The current secret, plus the previous one while its rotation overlap lasts."""
        live = [self.vault.reveal(session, endpoint.secret_ref)]
        if (
            endpoint.previous_secret_ref is not None
            and endpoint.previous_secret_expires_at is not None
            and endpoint.previous_secret_expires_at > now
        ):
            live.append(self.vault.reveal(session, endpoint.previous_secret_ref))
        return tuple(live)

    def release(self, job: Claimed, until: datetime | None = None) -> None:
        """Give back a claim that was not attempted (its number will be used by the next one)."""
        with self.db.transaction() as session:
            session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == job.delivery_id,
                    WebhookDelivery.claim_token == job.claim_token,
                )
                .values(
                    claim_token=None,
                    lease_expires_at=None,
                    attempts=WebhookDelivery.attempts - 1,
                    next_attempt_at=until or self.clock.now(),
                )
            )

    # --- 2. send -------------------------------------------------------------------------------

    def send(self, job: Claimed) -> AttemptResult:
        started_at = self.clock.now()
        began = time.perf_counter()

        def took() -> int:
            return int((time.perf_counter() - began) * 1000)

        try:
            self.policy.check_target(job.url)
            headers = {
                **outgoing_headers(),
                "Content-Type": "application/json",
                **delivery_headers(
                    job.secrets, job.event_id, int(self.clock.now().timestamp()), job.body
                ),
            }
            with self.http.post(
                job.url,
                data=job.body,
                headers=headers,
                timeout=self.timeouts,
                allow_redirects=False,
                stream=True,
            ) as response:
                body = self._read_some(response)
                status = response.status_code
                retry_after = retry_after_seconds(response.headers.get("Retry-After"), started_at)
        except TargetRejected as exc:
            return AttemptResult("blocked", started_at, took(), error=exc.reason)
        except requests.Timeout as exc:
            return AttemptResult("timeout", started_at, took(), error=_safe_error(exc))
        except requests.RequestException as exc:
            return AttemptResult("connection_error", started_at, took(), error=_safe_error(exc))
        outcome = "delivered" if 200 <= status < 300 else "http_error"
        return AttemptResult(
            outcome,
            started_at,
            took(),
            status_code=status,
            response_body=body,
            error=None if outcome == "delivered" else f"HTTP {status}",
            retry_after=retry_after,
        )

    def _read_some(self, response: requests.Response) -> str | None:
        limit = self.settings.webhook_response_body_bytes
        if limit == 0:
            return None
        raw = response.raw.read(limit, decode_content=True) or b""
        # PostgreSQL text cannot hold NUL; receivers' bodies are informative only.
        return raw[:limit].decode("utf-8", errors="replace").replace("\x00", "\ufffd")

    # --- 3. record -----------------------------------------------------------------------------

    def record(self, job: Claimed, result: AttemptResult) -> None:
        now = self.clock.now()
        metrics.WEBHOOK_ATTEMPTS.labels(result.outcome).inc()
        metrics.WEBHOOK_ATTEMPT_DURATION.labels(result.outcome).observe(result.duration_ms / 1000)
        with self.db.transaction() as session:
            session.add(
                WebhookAttempt(
                    id=new_id("wha"),
                    delivery_id=job.delivery_id,
                    event_id=job.event_id,
                    endpoint_id=job.endpoint_id,
                    number=job.attempt,
                    started_at=result.started_at,
                    duration_ms=result.duration_ms,
                    outcome=result.outcome,
                    status_code=result.status_code,
                    response_body=result.response_body,
                    error=result.error,
                )
            )
            delivery = session.scalars(
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.id == job.delivery_id,
                    WebhookDelivery.claim_token == job.claim_token,
                )
                .with_for_update()
            ).one_or_none()
            if delivery is None:
                # Our lease ran out and another dispatcher took over: the attempt is on record,
                # the delivery's state belongs to the new claim.
                log.warning("webhook_claim_lost", delivery_id=job.delivery_id, attempt=job.attempt)
                return
            delivery.claim_token = None
            delivery.lease_expires_at = None
            delivery.last_attempt_at = result.started_at
            delivery.last_status_code = result.status_code
            delivery.last_error = result.error
            delivery.updated_at = now
            if result.delivered:
                delivery.status = "delivered"
                delivery.delivered_at = now
                delivery.next_attempt_at = now
                metrics.WEBHOOK_DELIVERY_LAG.observe(
                    max(0.0, (now - job.event_created_at).total_seconds())
                )
                self._endpoint_succeeded(session, job.endpoint_id, now)
            else:
                self._schedule_retry(delivery, result, now)
                self._endpoint_failed(session, job.endpoint_id, result, now)
        log.info(
            "webhook_delivery_attempt",
            delivery_id=job.delivery_id,
            event_id=job.event_id,
            event_type=job.event_type,
            endpoint_id=job.endpoint_id,
            attempt=job.attempt,
            outcome=result.outcome,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
        )

    def _schedule_retry(
        self, delivery: WebhookDelivery, result: AttemptResult, now: datetime
    ) -> None:
        if delivery.retry_until is None:
            delivery.retry_until = result.started_at + self.window
        with self._rng_lock:
            delay = backoff_delay(
                delivery.schedule_step,
                initial=self.settings.webhook_retry_initial_seconds,
                maximum=self.settings.webhook_retry_max_interval_seconds,
                rng=self.rng,
            )
        if result.retry_after is not None:  # the receiver asked for a pause (429/503)
            delay = max(
                delay, min(result.retry_after, self.settings.webhook_retry_max_interval_seconds)
            )
        delivery.schedule_step += 1
        if now >= delivery.retry_until:
            delivery.status = "failed"
            delivery.next_attempt_at = now
            log.warning(
                "webhook_delivery_failed",
                delivery_id=delivery.id,
                event_id=delivery.event_id,
                endpoint_id=delivery.endpoint_id,
                attempts=delivery.attempts,
            )
        else:
            delivery.next_attempt_at = min(now + timedelta(seconds=delay), delivery.retry_until)

    def _locked_endpoint(self, session: Session, endpoint_id: str) -> WebhookEndpoint:
        return session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()

    def _endpoint_succeeded(self, session: Session, endpoint_id: str, now: datetime) -> None:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        stale = endpoint.last_success_at is None or now - endpoint.last_success_at > timedelta(
            minutes=1
        )
        # The happy path writes the endpoint row at most once a minute: no hot-row contention.
        if endpoint.status == "healthy" and endpoint.consecutive_failures == 0 and not stale:
            return
        endpoint = self._locked_endpoint(session, endpoint_id)
        endpoint.consecutive_failures = 0
        endpoint.failure_streak_started_at = None
        endpoint.last_success_at = now
        endpoint.paused_until = None
        with self._paused_lock:
            self._paused.pop(endpoint_id, None)
        if endpoint.status == "failing":
            endpoint.status = "healthy"
            endpoint.failing_since = None
            endpoint.version += 1
            endpoint.updated_at = now
            self._notify(session, endpoint, "webhook_endpoint.recovered", now)

    def _endpoint_failed(
        self, session: Session, endpoint_id: str, result: AttemptResult, now: datetime
    ) -> None:
        endpoint = self._locked_endpoint(session, endpoint_id)
        endpoint.consecutive_failures += 1
        endpoint.last_failure_at = now
        if endpoint.failure_streak_started_at is None:
            endpoint.failure_streak_started_at = result.started_at
        maximum = self.settings.webhook_timeout_pause_max_seconds
        if result.outcome == "timeout" and maximum > 0:
            # A receiver that hangs costs a dispatcher thread per attempt: stop sending to it for
            # a while (10 s, doubling per consecutive failure) instead of queueing more threads.
            pause = min(maximum, 10.0 * 2 ** min(endpoint.consecutive_failures - 1, 20))
            endpoint.paused_until = now + timedelta(seconds=pause)
            with self._paused_lock:
                self._paused[endpoint_id] = endpoint.paused_until
        persistent = endpoint.consecutive_failures >= (
            self.settings.webhook_failing_after_failures
        ) and now - endpoint.failure_streak_started_at >= timedelta(
            minutes=self.settings.webhook_failing_after_minutes
        )
        if endpoint.status == "healthy" and persistent:
            endpoint.status = "failing"
            endpoint.failing_since = now
            endpoint.version += 1
            endpoint.updated_at = now
            self._notify(session, endpoint, "webhook_endpoint.failing", now)

    def _notify(
        self, session: Session, endpoint: WebhookEndpoint, type: str, now: datetime
    ) -> None:
        """Tell the operator (audit, event, metric, log) and the partner (event, webhook)."""
        view = operator_view(endpoint)
        record_audit(
            session,
            actor=SYSTEM_ACTOR,
            action=type,
            target_type="webhook_endpoint",
            target_id=endpoint.id,
            at=now,
            details={
                "partner_id": endpoint.partner_id,
                "consecutive_failures": view["consecutive_failures"],
                "last_success_at": view["last_success_at"],
            },
        )
        record_event(
            session,
            type=type,
            resource_type="webhook_endpoint",
            resource_id=endpoint.id,
            sequence=endpoint.version,
            data={k: v for k, v in view.items() if k not in ("partner_id", "paused_until")},
            partner_id=endpoint.partner_id,
            at=now,
        )
        to = type.rsplit(".", 1)[1]
        metrics.WEBHOOK_ENDPOINT_TRANSITIONS.labels(to).inc()
        (log.warning if to == "failing" else log.info)(
            "webhook_endpoint_" + to,
            endpoint_id=endpoint.id,
            partner_id=endpoint.partner_id,
            consecutive_failures=endpoint.consecutive_failures,
        )

    # --- metrics -------------------------------------------------------------------------------

    def _refresh_metrics(self, every_seconds: float = 15.0) -> None:
        if time.monotonic() - self._metrics_refreshed < every_seconds:
            return
        self._metrics_refreshed = time.monotonic()
        for state, count in backlog(self.db, self.clock.now()).items():
            metrics.WEBHOOK_BACKLOG.labels(state).set(count)
        with self.db.read() as session:
            failing = session.scalar(
                select(func.count())
                .select_from(WebhookEndpoint)
                .where(WebhookEndpoint.status == "failing", WebhookEndpoint.deleted_at.is_(None))
            )
        metrics.WEBHOOK_ENDPOINTS_FAILING.set(failing or 0)


def backlog(db: Database, now: datetime) -> dict[str, int]:
    """Undelivered deliveries to enabled endpoints: `due` now and `scheduled` for later."""
    with db.read() as session:
        due, total = session.execute(
            select(
                func.coalesce(
                    func.sum(case((WebhookDelivery.next_attempt_at <= now, 1), else_=0)), 0
                ),
                func.count(),
            )
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookDelivery.status == "pending",
                WebhookEndpoint.enabled.is_(True),
                WebhookEndpoint.deleted_at.is_(None),
            )
        ).one()
    return {"due": int(due), "scheduled": int(total) - int(due)}


# --- operators ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayResult:
    queued: int
    skipped: int

    def as_dict(self) -> dict[str, int]:
        return {"queued": self.queued, "skipped": self.skipped}


def delivery_view(
    delivery: WebhookDelivery, event_type: str | None, attempts: Sequence[WebhookAttempt]
) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": event_type,
        "endpoint_id": delivery.endpoint_id,
        "partner_id": delivery.partner_id,
        "status": delivery.status,
        "in_flight": delivery.claim_token is not None,
        "attempt_count": delivery.attempts,
        "next_attempt_at": rfc3339(delivery.next_attempt_at)
        if delivery.status == "pending"
        else None,
        "retry_until": rfc3339(delivery.retry_until) if delivery.retry_until else None,
        "delivered_at": rfc3339(delivery.delivered_at) if delivery.delivered_at else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": rfc3339(delivery.created_at),
        "attempts": [
            {
                "id": a.id,
                "number": a.number,
                "started_at": rfc3339(a.started_at),
                "duration_ms": a.duration_ms,
                "outcome": a.outcome,
                "status_code": a.status_code,
                "response_body": a.response_body,
                "error": a.error,
            }
            for a in attempts
        ],
    }


class WebhookOperations:
    """What operators do with deliveries: inspect attempts, replay, keep the tables tidy."""

    REPLAY_BATCH = 500

    def __init__(self, db: Database, clock: Clock, settings: Settings) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings

    def page(
        self,
        *,
        cursor: str | None,
        limit: int,
        event_id: str | None = None,
        endpoint_id: str | None = None,
        partner_id: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """Deliveries (newest first) with every attempt, filtered by event/endpoint/partner."""
        query = select(WebhookDelivery)
        if event_id:
            query = query.where(WebhookDelivery.event_id == event_id)
        if endpoint_id:
            query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
        if partner_id:
            query = query.where(WebhookDelivery.partner_id == partner_id)
        if status:
            query = query.where(WebhookDelivery.status == status)
        with self.db.read() as session:
            result = page(
                session,
                query,
                WebhookDelivery.id,
                cursor=cursor,
                limit=limit,
                render=lambda d: {"row": d},
            )
            deliveries: list[WebhookDelivery] = [item["row"] for item in result["data"]]
            ids = [d.id for d in deliveries]
            attempts: dict[str, list[WebhookAttempt]] = {i: [] for i in ids}
            for attempt in session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_(ids))
                .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
            ):
                attempts[attempt.delivery_id].append(attempt)
            rows = session.execute(
                select(Event.id, Event.type).where(Event.id.in_({d.event_id for d in deliveries}))
            )
            types: dict[str, str] = {row[0]: row[1] for row in rows}
            result["data"] = [
                delivery_view(d, types.get(d.event_id), attempts[d.id]) for d in deliveries
            ]
            return result

    def replay_event(
        self, event_id: str, *, actor: str, endpoint_id: str | None = None
    ) -> ReplayResult:
        """Send one event again to its endpoints (or to one endpoint of its partner)."""
        now = self.clock.now()
        with self.db.transaction() as session:
            event = session.get(Event, event_id)
            if event is None:
                raise NotFound("No such event", code="event_not_found")
            query = select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)
            if endpoint_id:
                query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
            deliveries = list(session.scalars(query.with_for_update()).all())
            if endpoint_id and not deliveries:
                # An endpoint that did not exist (or was paused) when the event happened.
                endpoint = session.get(WebhookEndpoint, endpoint_id)
                if endpoint is None or endpoint.partner_id != event.partner_id:
                    raise NotFound(
                        "No such webhook endpoint for this event's partner",
                        code="webhook_endpoint_not_found",
                    )
                delivery = new_delivery(event, endpoint.id, endpoint.partner_id, now)
                if endpoint.deleted_at is None and endpoint.enabled:
                    session.add(delivery)
                deliveries = [delivery]
            result = self._requeue(session, deliveries, now)
            self._audit(
                session,
                actor,
                event_id,
                now,
                {"event_id": event_id, "endpoint_id": endpoint_id, **result.as_dict()},
            )
            return result

    def replay_range(
        self,
        *,
        since: datetime,
        until: datetime,
        actor: str,
        endpoint_id: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReplayResult:
        """Re-queue every undelivered delivery with a failed attempt, of events in [since, until).

        Runs in batches (one short transaction each), so a large range neither blocks the
        dispatchers nor holds locks; `progress(done, total)` is called after each batch.
        """
        if until <= since:
            raise InvalidRequest(
                "`until` must be after `since`",
                code="invalid_time_range",
                errors=[{"pointer": "/until", "detail": "must be after since"}],
            )
        condition = and_(
            WebhookDelivery.created_at >= since,
            WebhookDelivery.created_at < until,
            or_(
                WebhookDelivery.status == "failed",
                and_(WebhookDelivery.status == "pending", WebhookDelivery.schedule_step > 0),
            ),
        )
        if endpoint_id:
            condition = and_(condition, WebhookDelivery.endpoint_id == endpoint_id)
        with self.db.read() as session:
            total = int(
                session.scalar(select(func.count()).select_from(WebhookDelivery).where(condition))
                or 0
            )
        queued = skipped = done = 0
        last_id = ""
        now = self.clock.now()
        while True:
            with self.db.transaction() as session:
                deliveries = list(
                    session.scalars(
                        select(WebhookDelivery)
                        .where(condition, WebhookDelivery.id > last_id)
                        .order_by(WebhookDelivery.id)
                        .limit(self.REPLAY_BATCH)
                        .with_for_update()
                    ).all()
                )
                if not deliveries:
                    break
                last_id = deliveries[-1].id
                batch = self._requeue(session, deliveries, now)
            queued += batch.queued
            skipped += batch.skipped
            done += len(deliveries)
            if progress is not None:
                progress(done, max(total, done))
        result = ReplayResult(queued, skipped)
        with self.db.transaction() as session:
            self._audit(
                session,
                actor,
                endpoint_id or "*",
                self.clock.now(),
                {
                    "since": rfc3339(since),
                    "until": rfc3339(until),
                    "endpoint_id": endpoint_id,
                    **result.as_dict(),
                },
            )
        return result

    def _requeue(
        self, session: Session, deliveries: Sequence[WebhookDelivery], now: datetime
    ) -> ReplayResult:
        endpoints = {
            e.id: e
            for e in session.scalars(
                select(WebhookEndpoint).where(
                    WebhookEndpoint.id.in_({d.endpoint_id for d in deliveries})
                )
            )
        }
        queued = skipped = 0
        for delivery in deliveries:
            endpoint = endpoints[delivery.endpoint_id]
            in_flight = delivery.claim_token is not None and (
                delivery.lease_expires_at is not None and delivery.lease_expires_at > now
            )
            if endpoint.deleted_at is not None or not endpoint.enabled or in_flight:
                skipped += 1
                continue
            delivery.status = "pending"
            delivery.next_attempt_at = now
            delivery.schedule_step = 0
            delivery.retry_until = None  # a fresh retry window from the next attempt
            delivery.claim_token = None
            delivery.lease_expires_at = None
            delivery.updated_at = now
            queued += 1
        return ReplayResult(queued, skipped)

    @staticmethod
    def _audit(
        session: Session, actor: str, target_id: str, at: datetime, details: dict[str, Any]
    ) -> None:
        record_audit(
            session,
            actor=actor,
            action="webhook_deliveries.replayed",
            target_type="webhook_delivery",
            target_id=target_id,
            at=at,
            details=details,
        )

    # --- housekeeping --------------------------------------------------------------------------

    def housekeeping(self, batch: int = 1000) -> int:
        """Cancel orphans, drop expired rotation secrets, purge old finished deliveries."""
        now = self.clock.now()
        done = 0
        with self.db.transaction() as session:
            # Deliveries of endpoints deleted while a dispatcher held them.
            done += _rowcount(
                session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.status == "pending",
                        WebhookDelivery.endpoint_id.in_(
                            select(WebhookEndpoint.id).where(
                                WebhookEndpoint.deleted_at.is_not(None)
                            )
                        ),
                        or_(
                            WebhookDelivery.claim_token.is_(None),
                            WebhookDelivery.lease_expires_at <= now,
                        ),
                    )
                    .values(status="cancelled", claim_token=None, updated_at=now)
                )
            )
            expired = session.scalars(
                select(WebhookEndpoint)
                .where(
                    WebhookEndpoint.previous_secret_ref.is_not(None),
                    WebhookEndpoint.previous_secret_expires_at <= now,
                )
                .limit(batch)
                .with_for_update()
            ).all()
            for endpoint in expired:
                entry = session.get(VaultEntry, endpoint.previous_secret_ref)
                if entry is not None and entry.purpose == SECRET_PURPOSE:
                    session.delete(entry)
                endpoint.previous_secret_ref = None
                endpoint.previous_secret_expires_at = None
                done += 1
        cutoff = now - timedelta(days=self.settings.webhook_retention_days)
        with self.db.transaction() as session:
            old = list(
                session.scalars(
                    select(WebhookDelivery.id)
                    .where(
                        WebhookDelivery.status.in_(TERMINAL), WebhookDelivery.updated_at < cutoff
                    )
                    .limit(batch)
                )
            )
            if old:
                session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(old)))
                session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(old)))
                done += len(old)
        return done


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
