"""Webhook endpoints: a partner's receivers, their event filters and their signing secrets.

Secrets are generated here, stored only in the vault (`purpose="webhook_secret"`) and returned
exactly once, at creation and at rotation. A rotation keeps the previous secret valid for the
configured overlap: meanwhile every delivery carries a signature for each of the two, so the
receiver can switch secrets without a gap. Target URLs go through the SSRF policy on every
create and change (and again before each delivery, in the dispatcher).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gateway.domain.clock import Clock, rfc3339
from gateway.domain.errors import FieldError, NotFound, Unprocessable
from gateway.domain.ids import new_id
from gateway.security.ssrf import TargetPolicy, TargetRejected
from gateway.security.webhook_signing import new_secret
from gateway.store.audit import record_audit
from gateway.store.db import Database
from gateway.store.events import WILDCARD, event_types
from gateway.store.pagination import page
from gateway.store.tables import VaultEntry, WebhookDelivery, WebhookEndpoint
from gateway.vault import Vault

SECRET_PURPOSE = "webhook_secret"  # noqa: S105 (a vault purpose label, not a secret)
MAX_ENDPOINTS_PER_PARTNER = 20
# Called inside the creating transaction with the new endpoint's id (Idempotency-Key binding).
OnCreated = Callable[[Session, str], None]


def endpoint_view(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What the owning partner (and operators) see. Never a secret or a vault reference."""
    view: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "status": endpoint.status,
        "created_at": rfc3339(endpoint.created_at),
        "updated_at": rfc3339(endpoint.updated_at),
        "secret_rotated_at": _wire(endpoint.secret_rotated_at),
        "previous_secret_expires_at": _wire(endpoint.previous_secret_expires_at),
        "failing_since": _wire(endpoint.failing_since),
    }
    return view


def operator_view(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """The partner's view plus the health counters operators need."""
    return {
        **endpoint_view(endpoint),
        "partner_id": endpoint.partner_id,
        "consecutive_failures": endpoint.consecutive_failures,
        "last_success_at": _wire(endpoint.last_success_at),
        "last_failure_at": _wire(endpoint.last_failure_at),
        "paused_until": _wire(endpoint.paused_until),
    }


def _wire(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment is not None else None


def normalize_event_types(requested: list[str]) -> list[str]:
    """Validate an event-type filter: `*`, `<resource>.*` or known types; sorted, unique."""
    known = event_types()
    resources = {name.split(".", 1)[0] for name in known}
    errors: list[FieldError] = []
    for index, name in enumerate(requested):
        if name == WILDCARD or name in known:
            continue
        if name.endswith(".*") and name[:-2] in resources:
            continue
        errors.append({"pointer": f"/event_types/{index}", "detail": "is not a known event type"})
    if errors:
        raise Unprocessable(
            "The event type filter names unknown event types",
            code="unknown_event_type",
            errors=errors,
        )
    if not requested:
        raise Unprocessable(
            'Subscribe to at least one event type (or "*")',
            code="unknown_event_type",
            errors=[{"pointer": "/event_types", "detail": "must not be empty"}],
        )
    return [WILDCARD] if WILDCARD in requested else sorted(set(requested))


class WebhookEndpointService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        vault: Vault,
        *,
        policy: TargetPolicy,
        secret_overlap: timedelta,
    ) -> None:
        self.db = db
        self.clock = clock
        self.vault = vault
        self.policy = policy
        self.secret_overlap = secret_overlap

    # --- partner API ---------------------------------------------------------------------------

    def create(
        self,
        partner_id: str,
        *,
        url: str,
        event_types: list[str],
        enabled: bool = True,
        description: str | None = None,
        on_created: OnCreated | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Create an endpoint; returns its view and its secret (the only time it is shown)."""
        filters = normalize_event_types(event_types)
        self._check_url(url)
        secret = new_secret()
        now = self.clock.now()
        with self.db.transaction() as session:
            count = session.scalar(
                select(func.count())
                .select_from(WebhookEndpoint)
                .where(
                    WebhookEndpoint.partner_id == partner_id, WebhookEndpoint.deleted_at.is_(None)
                )
            )
            if (count or 0) >= MAX_ENDPOINTS_PER_PARTNER:
                raise Unprocessable(
                    f"A partner can have at most {MAX_ENDPOINTS_PER_PARTNER} webhook endpoints",
                    code="too_many_webhook_endpoints",
                )
            endpoint = WebhookEndpoint(
                id=new_id("whe"),
                partner_id=partner_id,
                url=url,
                description=description,
                event_types=filters,
                enabled=enabled,
                status="healthy",
                secret_ref=self.vault.store(session, purpose=SECRET_PURPOSE, plaintext=secret),
                consecutive_failures=0,
                version=1,
                created_at=now,
                updated_at=now,
            )
            session.add(endpoint)
            session.flush()
            if on_created is not None:
                on_created(session, endpoint.id)
            self._audit(session, endpoint, "webhook_endpoint.created", now)
            return endpoint_view(endpoint), secret

    def page(self, partner_id: str, *, cursor: str | None, limit: int) -> dict[str, Any]:
        query = select(WebhookEndpoint).where(
            WebhookEndpoint.partner_id == partner_id, WebhookEndpoint.deleted_at.is_(None)
        )
        with self.db.read() as session:
            return page(
                session, query, WebhookEndpoint.id, cursor=cursor, limit=limit, render=endpoint_view
            )

    def get(self, partner_id: str, endpoint_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            return endpoint_view(self._owned(session, partner_id, endpoint_id))

    def update(self, partner_id: str, endpoint_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change url, event_types, enabled and/or description (absent fields stay)."""
        if "event_types" in changes:
            changes = {**changes, "event_types": normalize_event_types(changes["event_types"])}
        if "url" in changes:
            self._check_url(changes["url"])
        now = self.clock.now()
        with self.db.transaction() as session:
            endpoint = self._owned(session, partner_id, endpoint_id, lock=True)
            changed = sorted(
                name
                for name in ("url", "event_types", "enabled", "description")
                if name in changes and getattr(endpoint, name) != changes[name]
            )
            for name in changed:
                setattr(endpoint, name, changes[name])
            if changed:
                endpoint.version += 1
                endpoint.updated_at = now
                self._audit(
                    session, endpoint, "webhook_endpoint.updated", now, {"changed": changed}
                )
            return endpoint_view(endpoint)

    def delete(self, partner_id: str, endpoint_id: str) -> None:
        """Remove an endpoint: nothing more is sent to it; its delivery history is kept."""
        now = self.clock.now()
        with self.db.transaction() as session:
            endpoint = self._owned(session, partner_id, endpoint_id, lock=True)
            endpoint.deleted_at = now
            endpoint.enabled = False
            endpoint.version += 1
            endpoint.updated_at = now
            self._forget_secret(session, endpoint.previous_secret_ref)
            endpoint.previous_secret_ref = None
            endpoint.previous_secret_expires_at = None
            # Unclaimed deliveries are cancelled now; a claimed one is cancelled by housekeeping.
            session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.endpoint_id == endpoint.id,
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.claim_token.is_(None),
                )
                .values(status="cancelled", updated_at=now)
            )
            self._audit(session, endpoint, "webhook_endpoint.deleted", now)

    def rotate_secret(
        self, partner_id: str, endpoint_id: str, *, on_rotated: OnCreated | None = None
    ) -> tuple[dict[str, Any], str]:
        """Issue a new secret; the current one keeps verifying for the overlap period.

        A rotation during an overlap drops the oldest secret at once: at most two are live.
        """
        secret = new_secret()
        now = self.clock.now()
        with self.db.transaction() as session:
            endpoint = self._owned(session, partner_id, endpoint_id, lock=True)
            self._forget_secret(session, endpoint.previous_secret_ref)
            if self.secret_overlap > timedelta(0):
                endpoint.previous_secret_ref = endpoint.secret_ref
                endpoint.previous_secret_expires_at = now + self.secret_overlap
            else:
                self._forget_secret(session, endpoint.secret_ref)
                endpoint.previous_secret_ref = None
                endpoint.previous_secret_expires_at = None
            endpoint.secret_ref = self.vault.store(
                session, purpose=SECRET_PURPOSE, plaintext=secret
            )
            endpoint.secret_rotated_at = now
            endpoint.version += 1
            endpoint.updated_at = now
            if on_rotated is not None:
                on_rotated(session, endpoint.id)
            self._audit(
                session,
                endpoint,
                "webhook_endpoint.secret_rotated",
                now,
                {"overlap_seconds": int(self.secret_overlap.total_seconds())},
            )
            return endpoint_view(endpoint), secret

    # --- operators -----------------------------------------------------------------------------

    def operator_page(
        self,
        *,
        cursor: str | None,
        limit: int,
        partner_id: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        query = select(WebhookEndpoint).where(WebhookEndpoint.deleted_at.is_(None))
        if partner_id:
            query = query.where(WebhookEndpoint.partner_id == partner_id)
        if status:
            query = query.where(WebhookEndpoint.status == status)
        with self.db.read() as session:
            return page(
                session, query, WebhookEndpoint.id, cursor=cursor, limit=limit, render=operator_view
            )

    # --- helpers -------------------------------------------------------------------------------

    def _check_url(self, url: str) -> None:
        try:
            self.policy.check_target(url)
        except TargetRejected as exc:
            raise Unprocessable(
                exc.reason, code=exc.code, errors=[{"pointer": "/url", "detail": exc.reason}]
            ) from None

    @staticmethod
    def _owned(
        session: Session, partner_id: str, endpoint_id: str, *, lock: bool = False
    ) -> WebhookEndpoint:
        query = select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id,
            WebhookEndpoint.partner_id == partner_id,
            WebhookEndpoint.deleted_at.is_(None),
        )
        if lock:
            query = query.with_for_update()
        endpoint = session.scalars(query).one_or_none()
        if endpoint is None:  # another partner's endpoint is just as absent
            raise NotFound("No such webhook endpoint", code="webhook_endpoint_not_found")
        return endpoint

    @staticmethod
    def _forget_secret(session: Session, ref: str | None) -> None:
        if ref is not None:
            entry = session.get(VaultEntry, ref)
            if entry is not None:
                session.delete(entry)

    @staticmethod
    def _audit(
        session: Session,
        endpoint: WebhookEndpoint,
        action: str,
        at: datetime,
        details: dict[str, Any] | None = None,
    ) -> None:
        record_audit(
            session,
            actor=f"partner:{endpoint.partner_id}",
            action=action,
            target_type="webhook_endpoint",
            target_id=endpoint.id,
            at=at,
            # The host only: a URL's path or query may carry the partner's own credentials.
            details={
                "host": urlsplit(endpoint.url).hostname,
                "event_types": list(endpoint.event_types),
                "enabled": endpoint.enabled,
                **(details or {}),
            },
        )
