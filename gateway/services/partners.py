"""Partners: create, authenticate, rotate secrets, suspend/resume/revoke.

A partner's `token_version` is bumped whenever its access must end at once (suspension,
revocation, secret rotation): tokens carry the version they were issued under and the request
guard compares it with the row, so no token list or revocation cache is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from gateway.domain.clock import Clock, rfc3339
from gateway.domain.errors import AuthenticationFailed, NotFound, PermissionDenied
from gateway.domain.ids import new_id
from gateway.security.scopes import ALLOWED_SCOPES, check_scopes
from gateway.security.secrets import hash_secret, new_client_secret, verify_secret
from gateway.store.audit import record_audit
from gateway.store.db import Database
from gateway.store.pagination import page
from gateway.store.tables import Partner

STATUSES = ("active", "suspended", "revoked")


@dataclass(frozen=True)
class Principal:
    """The authenticated partner of a request (what handlers see)."""

    id: str
    name: str
    kind: str
    scopes: frozenset[str]
    settlement_account: str | None
    settlement_currency: str | None
    rate_limit: str | None
    created_at: datetime

    @classmethod
    def of(cls, partner: Any) -> Principal:
        """From a `Partner` row or a row of `PRINCIPAL_COLUMNS`."""
        return cls(
            partner.id,
            partner.name,
            partner.kind,
            frozenset(partner.scopes),
            partner.settlement_account,
            partner.settlement_currency,
            partner.rate_limit,
            partner.created_at,
        )


# What a request needs to know about its partner (never the secret hash), plus what guards it.
PRINCIPAL_COLUMNS = (
    Partner.id,
    Partner.name,
    Partner.kind,
    Partner.scopes,
    Partner.settlement_account,
    Partner.settlement_currency,
    Partner.rate_limit,
    Partner.created_at,
    Partner.status,
    Partner.token_version,
)
# Built once: re-executing the same statement object skips SQLAlchemy's per-call rebuild and
# result-map adaptation (a third of the cost of this read).
_PRINCIPAL_QUERY = select(*PRINCIPAL_COLUMNS).where(Partner.id == bindparam("partner_id"))


def public_view(partner: Partner | Principal) -> dict[str, Any]:
    """What a partner (or an operator listing partners) may see; never the secret hash.

    A Principal is an active partner as read for the current request."""
    view: dict[str, Any] = {
        "id": partner.id,
        "name": partner.name,
        "kind": partner.kind,
        "status": partner.status if isinstance(partner, Partner) else "active",
        "scopes": sorted(partner.scopes),
        "created_at": rfc3339(partner.created_at),
    }
    if partner.settlement_account:
        view["settlement_account"] = "****" + partner.settlement_account[-4:]
        view["settlement_currency"] = partner.settlement_currency
    return view


class PartnerService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def create(
        self,
        *,
        name: str,
        kind: str,
        scopes: list[str] | None = None,
        settlement_account: str | None = None,
        settlement_currency: str | None = None,
        rate_limit: str | None = None,
        actor: str,
    ) -> tuple[dict[str, Any], str]:
        """Create a partner; returns its public view and the client secret (shown only once)."""
        granted = check_scopes(
            kind, scopes if scopes is not None else sorted(ALLOWED_SCOPES.get(kind, []))
        )
        if not name.strip():
            raise ValueError("name must not be empty")
        if rate_limit:
            from limits import parse_many

            parse_many(rate_limit)
        secret = new_client_secret()
        now = self.clock.now()
        partner = Partner(
            id=new_id("ptn"),
            name=name.strip(),
            kind=kind,
            status="active",
            scopes=granted,
            client_secret_hash=hash_secret(secret),
            token_version=1,
            settlement_account=settlement_account,
            settlement_currency=settlement_currency,
            rate_limit=rate_limit,
            created_at=now,
            updated_at=now,
        )
        with self.db.transaction() as session:
            session.add(partner)
            record_audit(
                session,
                actor=actor,
                action="partner.created",
                target_type="partner",
                target_id=partner.id,
                at=now,
                details={"kind": kind, "scopes": granted},
            )
            view = public_view(partner)
        return view, secret

    def list(self) -> list[dict[str, Any]]:
        with self.db.read() as session:
            partners = session.scalars(select(Partner).order_by(Partner.id)).all()
            return [public_view(p) for p in partners]

    def page(
        self, *, cursor: str | None, limit: int, status: str | None = None, kind: str | None = None
    ) -> dict[str, Any]:
        query = select(Partner)
        if status:
            query = query.where(Partner.status == status)
        if kind:
            query = query.where(Partner.kind == kind)
        with self.db.read() as session:
            return page(session, query, Partner.id, cursor=cursor, limit=limit, render=public_view)

    def get(self, partner_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            partner = session.get(Partner, partner_id)
            if partner is None:
                raise NotFound("No such partner", code="partner_not_found")
            return public_view(partner)

    def rotate_secret(self, partner_id: str, *, actor: str) -> str:
        """Issue a new secret; the old one and every token issued under it stop working."""
        secret = new_client_secret()
        with self.db.transaction() as session:
            partner = self._locked(session, partner_id)
            partner.client_secret_hash = hash_secret(secret)
            partner.token_version += 1
            partner.updated_at = self.clock.now()
            record_audit(
                session,
                actor=actor,
                action="partner.secret_rotated",
                target_type="partner",
                target_id=partner_id,
                at=partner.updated_at,
            )
        return secret

    def set_status(
        self, partner_id: str, status: str, *, actor: str, reason: str = ""
    ) -> dict[str, Any]:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        with self.db.transaction() as session:
            partner = self._locked(session, partner_id)
            if partner.status == "revoked" and status != "revoked":
                raise PermissionDenied(
                    "A revoked partner cannot be reactivated", code="partner_revoked"
                )
            if partner.status != status:
                partner.status = status
                partner.token_version += 1
                partner.updated_at = self.clock.now()
                record_audit(
                    session,
                    actor=actor,
                    action=f"partner.{status}",
                    target_type="partner",
                    target_id=partner_id,
                    at=partner.updated_at,
                    details={"reason": reason},
                )
            return public_view(partner)

    def authenticate(self, client_id: str, client_secret: str) -> Partner:
        """Check client credentials (constant work whether or not the id exists)."""
        with self.db.read() as session:
            partner = session.get(Partner, client_id) if len(client_id) <= 40 else None
            if not verify_secret(partner.client_secret_hash if partner else None, client_secret):
                raise AuthenticationFailed(
                    "Client authentication failed",
                    code="invalid_client",
                    headers={"WWW-Authenticate": 'Basic realm="wallet-gateway"'},
                    error="invalid_client",
                )
            assert partner is not None
            if partner.status != "active":
                raise AuthenticationFailed(
                    f"The partner is {partner.status}",
                    code="partner_inactive",
                    error="invalid_client",
                )
            return partner

    def principal(self, partner_id: str, token_version: int) -> Principal:
        """The active partner behind a verified token, or 401 if access was withdrawn.

        Runs on every authenticated request and is never cached, so suspension, revocation and
        secret rotation take effect at once: one primary-key read of the columns it needs.
        """
        with self.db.read_connection() as connection:
            partner = connection.execute(_PRINCIPAL_QUERY, {"partner_id": partner_id}).one_or_none()
        if partner is None or partner.token_version != token_version or partner.status != "active":
            status = partner.status if partner is not None else "unknown"
            detail = (
                f"The partner is {status}"
                if status in ("suspended", "revoked")
                else "The access token has been revoked"
            )
            raise AuthenticationFailed(
                detail,
                code="token_revoked",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return Principal.of(partner)

    def set_fee(
        self,
        partner_id: str,
        *,
        direction: str,
        currency: str,
        fixed: str = "0",
        percent: str = "0",
        minimum: str = "0",
        maximum: str | None = None,
        actor: str,
    ) -> dict[str, Any]:
        """Set the partner's fee for one direction and currency (amounts as decimal strings)."""
        from decimal import Decimal, InvalidOperation

        from gateway.domain.money import Money
        from gateway.store.tables import FeeScheduleRow

        if direction not in ("debit", "credit"):
            raise ValueError("direction must be debit or credit")

        def minor(value: str) -> int:
            return Money.from_decimal(Decimal(value), currency).minor

        try:
            rate_ppm = Decimal(percent) * 10_000
            if rate_ppm != rate_ppm.to_integral_value() or not 0 <= rate_ppm <= 1_000_000:
                raise ValueError("percent must be between 0 and 100 with at most 4 decimals")
            row = FeeScheduleRow(
                partner_id=partner_id,
                direction=direction,
                currency=currency,
                fixed=minor(fixed),
                rate_ppm=int(rate_ppm),
                minimum=minor(minimum),
                maximum=minor(maximum) if maximum is not None else None,
            )
        except InvalidOperation:
            raise ValueError("amounts and percent must be decimal numbers") from None
        with self.db.transaction() as session:
            self._locked(session, partner_id)
            session.merge(row)
            record_audit(
                session,
                actor=actor,
                action="partner.fee_set",
                target_type="partner",
                target_id=partner_id,
                at=self.clock.now(),
                details={
                    "direction": direction,
                    "currency": currency,
                    "fixed": fixed,
                    "percent": percent,
                    "minimum": minimum,
                    "maximum": maximum,
                },
            )
        return {
            "direction": direction,
            "currency": currency,
            "fixed": fixed,
            "percent": percent,
            "minimum": minimum,
            "maximum": maximum,
        }

    def set_limit(
        self,
        partner_id: str,
        *,
        currency: str,
        per_transaction: str | None,
        daily: str | None,
        actor: str,
    ) -> dict[str, Any]:
        """Cap the partner's transfers per transaction and per day in one currency."""
        from decimal import Decimal

        from gateway.domain.money import Money
        from gateway.store.tables import PartnerLimit

        def minor(value: str | None) -> int | None:
            return None if value is None else Money.from_decimal(Decimal(value), currency).minor

        with self.db.transaction() as session:
            self._locked(session, partner_id)
            session.merge(
                PartnerLimit(
                    partner_id=partner_id,
                    currency=currency,
                    per_transaction=minor(per_transaction),
                    daily=minor(daily),
                )
            )
            record_audit(
                session,
                actor=actor,
                action="partner.limit_set",
                target_type="partner",
                target_id=partner_id,
                at=self.clock.now(),
                details={"currency": currency, "per_transaction": per_transaction, "daily": daily},
            )
        return {"currency": currency, "per_transaction": per_transaction, "daily": daily}

    @staticmethod
    def _locked(session: Any, partner_id: str) -> Partner:
        partner = session.execute(
            select(Partner).where(Partner.id == partner_id).with_for_update()
        ).scalar_one_or_none()
        if partner is None:
            raise NotFound("No such partner", code="partner_not_found")
        return partner
