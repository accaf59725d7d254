"""Account links: create (with the core's checks and an OTP), verify, read, revoke, expire.

The account number is put in the vault the moment it arrives and never leaves it except to
call the core; partners only ever see the link id and `****6789`. The OTP goes to the mobile
number the *bank* holds for the account, never one the partner supplies.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters.base import CoreAccount, CoreBanking, CoreBankingRejected, StatementEntry
from gateway.domain.clock import Clock, rfc3339
from gateway.domain.errors import (
    Conflict,
    FieldError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unprocessable,
)
from gateway.domain.ids import new_id
from gateway.domain.links import (
    LinkStatus,
    can_transition,
    names_match,
    normalize_account_number,
)
from gateway.domain.money import Money, MoneyError
from gateway.observability.logging import get_logger, mask
from gateway.services.otp import OtpService
from gateway.services.partners import Principal
from gateway.store.audit import record_audit
from gateway.store.db import Database
from gateway.store.events import record_event
from gateway.store.idempotency import IdempotencyKeys, IdempotencyRequest
from gateway.store.pagination import page
from gateway.store.tables import Link
from gateway.vault import Vault

log = get_logger("gateway.links")

ACCOUNT_PURPOSE = "account_number"
OTP_PURPOSE = "link_verification"
LIVE = (LinkStatus.PENDING, LinkStatus.ACTIVE, LinkStatus.SUSPENDED)
_CORE_REFUSALS = {
    "ACCOUNT_NOT_FOUND": ("account_not_found", "No account with this number exists at the bank"),
    "ACCOUNT_INACTIVE": ("account_inactive", "The account is not active"),
}


@dataclass(frozen=True)
class LinkPolicy:
    pending_ttl: timedelta
    max_consent: timedelta
    bank_name: str


def _money(minor: int | None, currency: str) -> dict[str, str] | None:
    return None if minor is None else Money(minor, currency).to_wire()


class LinkService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        vault: Vault,
        core: CoreBanking,
        otp: OtpService,
        idempotency: IdempotencyKeys,
        policy: LinkPolicy,
    ) -> None:
        self.db = db
        self.clock = clock
        self.vault = vault
        self.core = core
        self.otp = otp
        self.idempotency = idempotency
        self.policy = policy

    # --- views -------------------------------------------------------------------------------

    def effective_status(self, link: Link, now: datetime | None = None) -> str:
        """The status a reader sees: consent expiry applies even before the sweeper runs."""
        now = now or self.clock.now()
        if link.status in LIVE and link.consent_expires_at and link.consent_expires_at <= now:
            return LinkStatus.EXPIRED.value
        if link.status == LinkStatus.PENDING and link.created_at + self.policy.pending_ttl <= now:
            return LinkStatus.EXPIRED.value
        return link.status

    def _lapsed(self, now: datetime) -> Any:
        """SQL for "expired, though the row does not say so yet" (`effective_status`, in SQL):
        a live link past its consent expiry, or a pending one past its verification window."""
        return or_(
            Link.status.in_([s.value for s in LIVE])
            & Link.consent_expires_at.is_not(None)  # NULL would make a negation unknown
            & (Link.consent_expires_at <= now),
            (Link.status == LinkStatus.PENDING.value)
            & (Link.created_at <= now - self.policy.pending_ttl),
        )

    def _effectively(self, status: str) -> Any:
        """A SQL condition for "readers see this status": a lapsed link reads as expired before
        the sweeper has run."""
        lapsed = self._lapsed(self.clock.now())
        if status == LinkStatus.EXPIRED:
            return or_(Link.status == status, lapsed)
        return (Link.status == status) & ~lapsed

    def view(self, session: Session, link: Link) -> dict[str, Any]:
        now = self.clock.now()
        status = self.effective_status(link, now)
        body: dict[str, Any] = {
            "id": link.id,
            "status": status,
            "account": {"masked": link.account_mask, "currency": link.currency},
            "wallet_account_reference": link.wallet_account_reference,
            "consent": {
                "scopes": list(link.scopes),
                "limits": {
                    "per_transaction": _money(link.limit_per_transaction, link.currency),
                    "daily": _money(link.limit_daily, link.currency),
                    "monthly": _money(link.limit_monthly, link.currency),
                },
                "expires_at": rfc3339(link.consent_expires_at) if link.consent_expires_at else None,
            },
            "created_at": rfc3339(link.created_at),
            "activated_at": rfc3339(link.activated_at) if link.activated_at else None,
            "ended_at": rfc3339(link.ended_at) if link.ended_at else None,
            "status_reason": link.status_reason,
        }
        if status == LinkStatus.PENDING:
            challenge = self.otp.current(session, OTP_PURPOSE, link.id)
            if challenge is not None:
                body["verification"] = {
                    "sent_to": challenge.sent_to_mask,
                    "expires_at": rfc3339(challenge.expires_at),
                    "attempts_remaining": self.otp.attempts_remaining(challenge, now),
                }
        return body

    # --- create ------------------------------------------------------------------------------

    def _parse_consent(self, body: dict[str, Any], currency: str) -> dict[str, Any]:
        consent = body.get("consent", {})
        scopes = sorted(set(consent.get("scopes", [])))
        errors: list[FieldError] = []
        limits: dict[str, int | None] = {}
        for name in ("per_transaction", "daily", "monthly"):
            wire = (consent.get("limits") or {}).get(name)
            if wire is None:
                limits[name] = None
                continue
            try:
                money = Money.from_wire(wire)
            except MoneyError as exc:
                errors.append(
                    {"pointer": f"/consent/limits/{name}/{exc.field}", "detail": str(exc)}
                )
                continue
            if money.currency != currency:
                errors.append(
                    {
                        "pointer": f"/consent/limits/{name}/currency",
                        "detail": "must be the link's currency",
                    }
                )
            elif money.minor <= 0:
                errors.append(
                    {"pointer": f"/consent/limits/{name}/value", "detail": "must be positive"}
                )
            limits[name] = money.minor
        expires_at = consent.get("expires_at")
        now = self.clock.now()
        if expires_at is not None:
            expires_at = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
            if expires_at.tzinfo is None:
                errors.append(
                    {"pointer": "/consent/expires_at", "detail": "must include a time zone"}
                )
            elif expires_at <= now:
                errors.append({"pointer": "/consent/expires_at", "detail": "must be in the future"})
            elif expires_at > now + self.policy.max_consent:
                errors.append(
                    {
                        "pointer": "/consent/expires_at",
                        "detail": f"must be within {self.policy.max_consent.days} days",
                    }
                )
        if errors:
            raise InvalidRequest(
                "The consent is not valid", code="validation_failed", errors=errors
            )
        return {"scopes": scopes, "limits": limits, "expires_at": expires_at}

    def _check_account(self, account: CoreAccount, body: dict[str, Any], scopes: list[str]) -> None:
        if account.status != "ACTIVE":
            raise Unprocessable("The account is not active", code="account_inactive")
        if account.currency != body["currency"]:
            raise Unprocessable(
                "The account's currency is not the link's currency", code="currency_mismatch"
            )
        if not names_match(account.holder_name, body["holder_name"]):
            raise Unprocessable(
                "The holder name does not match the bank's records", code="name_mismatch"
            )
        if ("debit" in scopes and not account.debit_allowed) or (
            "credit" in scopes and not account.credit_allowed
        ):
            raise Unprocessable(
                "The account does not allow the requested consent", code="account_not_eligible"
            )
        if not account.registered_mobile:
            raise Unprocessable(
                "The bank holds no mobile number for this account, so it cannot be verified",
                code="no_registered_mobile",
            )

    def create(
        self, partner: Principal, body: dict[str, Any], request: IdempotencyRequest
    ) -> dict[str, Any]:
        currency = body["currency"]
        try:
            Money(0, currency)
        except MoneyError as exc:
            raise InvalidRequest(
                str(exc),
                code="validation_failed",
                errors=[{"pointer": "/currency", "detail": str(exc)}],
            ) from None
        consent = self._parse_consent(body, currency)
        number = normalize_account_number(body["account_number"])
        index = self.vault.blind_index(ACCOUNT_PURPOSE, number)
        self._refuse_duplicate(partner.id, index)
        try:
            account = self.core.get_account(number)
        except CoreBankingRejected as exc:
            code, detail = _CORE_REFUSALS.get(
                exc.core_code, ("account_rejected", "The bank refused the account")
            )
            raise Unprocessable(detail, code=code) from exc
        self._check_account(account, body, consent["scopes"])
        assert account.registered_mobile is not None
        now = self.clock.now()
        link = Link(
            id=new_id("lnk"),
            partner_id=partner.id,
            status=LinkStatus.PENDING.value,
            account_index=index,
            account_mask=mask(number),
            currency=currency,
            wallet_account_reference=body["wallet_account_reference"],
            scopes=consent["scopes"],
            limit_per_transaction=consent["limits"]["per_transaction"],
            limit_daily=consent["limits"]["daily"],
            limit_monthly=consent["limits"]["monthly"],
            consent_expires_at=consent["expires_at"],
            version=1,
            created_at=now,
            updated_at=now,
        )
        try:
            with self.db.transaction() as session:
                # A lapsed link the sweeper has not reached yet still holds the live-account
                # index: expire it here, in this transaction, so the new link can take its place.
                for lapsed in session.scalars(
                    select(Link)
                    .where(
                        Link.partner_id == partner.id,
                        Link.account_index == index,
                        Link.status.in_([s.value for s in LIVE]),
                    )
                    .with_for_update()
                ):
                    self._expire_if_due(session, lapsed)
                session.flush()
                link.account_entry_id = self.vault.store(
                    session, purpose=ACCOUNT_PURPOSE, plaintext=number
                )
                session.flush()  # the vault row first: the link references it
                session.add(link)
                session.flush()
                _challenge, code = self.otp.issue(
                    session,
                    purpose=OTP_PURPOSE,
                    subject_id=link.id,
                    mobile=account.registered_mobile,
                )
                self.idempotency.attach(session, request, "link", link.id)
                record_event(
                    session,
                    type="link.created",
                    resource_type="link",
                    resource_id=link.id,
                    sequence=link.version,
                    data=self._event_view(session, link),
                    partner_id=partner.id,
                    at=now,
                )
        except IntegrityError:
            self._refuse_duplicate(partner.id, index)
            raise
        self.otp.deliver(
            mobile=account.registered_mobile, text=self._otp_text(partner, code), reference=link.id
        )
        with self.db.read() as session:
            return self.view(session, session.get(Link, link.id))  # type: ignore[arg-type]

    def _event_view(self, session: Session, link: Link) -> dict[str, Any]:
        body = self.view(session, link)
        body.pop("verification", None)
        return body

    def _otp_text(self, partner: Principal, code: str) -> str:
        minutes = int(self.otp.policy.ttl.total_seconds() // 60)
        return (
            f"{self.policy.bank_name}: {code} is your code to link your account to "
            f"{partner.name}. It expires in {minutes} minutes. Never share it with anyone."
        )

    def _refuse_duplicate(self, partner_id: str, index: str) -> None:
        with self.db.read() as session:
            existing = session.scalars(
                select(Link).where(
                    Link.partner_id == partner_id,
                    Link.account_index == index,
                    Link.status.in_([s.value for s in LIVE]),
                )
            ).first()
            if existing is not None and self.effective_status(existing) != LinkStatus.EXPIRED:
                raise Conflict(
                    "This account is already linked for this partner",
                    code="link_exists",
                    link_id=existing.id,
                    link_status=existing.status,
                )

    # --- verification ------------------------------------------------------------------------

    def _own(self, session: Session, partner_id: str, link_id: str, *, lock: bool = False) -> Link:
        query = select(Link).where(Link.id == link_id, Link.partner_id == partner_id)
        if lock:
            query = query.with_for_update()
        link = session.scalars(query).first()
        if link is None:
            raise NotFound("No such link", code="link_not_found")
        return link

    def _transition(
        self, session: Session, link: Link, target: LinkStatus, *, reason: str | None = None
    ) -> None:
        if not can_transition(link.status, target):
            raise Conflict(
                f"A {link.status} link cannot become {target.value}", code="link_state_conflict"
            )
        now = self.clock.now()
        link.status = target.value
        link.status_reason = reason
        link.version += 1
        link.updated_at = now
        if target == LinkStatus.ACTIVE and link.activated_at is None:
            link.activated_at = now
        if target in (LinkStatus.REVOKED, LinkStatus.LOCKED, LinkStatus.EXPIRED):
            link.ended_at = now
        session.flush()
        record_event(
            session,
            type=f"link.{target.value}",
            resource_type="link",
            resource_id=link.id,
            sequence=link.version,
            data=self._event_view(session, link),
            partner_id=link.partner_id,
            at=now,
        )

    def _expire_if_due(self, session: Session, link: Link) -> None:
        if link.status in LIVE and self.effective_status(link) == LinkStatus.EXPIRED:
            self._transition(
                session, link, LinkStatus.EXPIRED, reason="consent or verification expired"
            )

    def verify(self, partner: Principal, link_id: str, code: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            link = self._own(session, partner.id, link_id, lock=True)
            self._expire_if_due(session, link)
            if link.status != LinkStatus.PENDING:
                raise Conflict(
                    f"The link is {link.status}, not awaiting verification",
                    code="link_state_conflict",
                )
            result = self.otp.verify(session, purpose=OTP_PURPOSE, subject_id=link.id, code=code)
            if result.outcome == "verified":
                self._transition(session, link, LinkStatus.ACTIVE)
            elif result.outcome == "locked":
                self._transition(session, link, LinkStatus.LOCKED, reason="too many wrong codes")
            view = self.view(session, link)
        # The attempt is committed above; now tell the partner what happened.
        if result.outcome == "invalid":
            raise Unprocessable(
                "The code is not correct",
                code="otp_invalid",
                attempts_remaining=result.attempts_remaining,
            )
        if result.outcome == "locked":
            raise Unprocessable(
                "Too many wrong codes: the link is locked; create a new link", code="otp_locked"
            )
        if result.outcome == "expired":
            raise Unprocessable("The code has expired; request a new one", code="otp_expired")
        if result.outcome == "missing":
            raise Conflict("No code is pending; request a new one", code="otp_missing")
        return view

    def resend(self, partner: Principal, link_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            link = self._own(session, partner.id, link_id, lock=True)
            self._expire_if_due(session, link)
            if link.status != LinkStatus.PENDING:
                raise Conflict(
                    f"The link is {link.status}, not awaiting verification",
                    code="link_state_conflict",
                )
            if self.otp.sends_so_far(session, OTP_PURPOSE, link.id) >= self.otp.policy.max_sends:
                raise RateLimited(
                    "No more codes can be sent for this link; create a new link",
                    code="otp_send_limit",
                    retryable=False,
                )
            number = self.vault.reveal(session, link.account_entry_id)
        account = self.core.get_account(number)  # the mobile may have changed at the bank
        if not account.registered_mobile:
            raise Unprocessable(
                "The bank holds no mobile number for this account", code="no_registered_mobile"
            )
        with self.db.transaction() as session:
            _challenge, code = self.otp.issue(
                session, purpose=OTP_PURPOSE, subject_id=link_id, mobile=account.registered_mobile
            )
        self.otp.deliver(
            mobile=account.registered_mobile, text=self._otp_text(partner, code), reference=link_id
        )
        return self.get(partner, link_id)

    # --- reads -------------------------------------------------------------------------------

    def get(self, partner: Principal, link_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            return self.view(session, self._own(session, partner.id, link_id))

    def page(
        self, partner: Principal, *, cursor: str | None, limit: int, status: str | None = None
    ) -> dict[str, Any]:
        query = select(Link).where(Link.partner_id == partner.id)
        if status:
            query = query.where(self._effectively(status))
        with self.db.read() as session:
            return page(
                session,
                query,
                Link.id,
                cursor=cursor,
                limit=limit,
                render=lambda link: self.view(session, link),
            )

    # --- ending ------------------------------------------------------------------------------

    def revoke(self, partner: Principal, link_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            link = self._own(session, partner.id, link_id, lock=True)
            self._expire_if_due(session, link)
            if link.status != LinkStatus.REVOKED:
                self._transition(session, link, LinkStatus.REVOKED, reason="revoked by the partner")
            return self.view(session, link)

    def operator_update(self, link_id: str, status: str, reason: str, actor: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            link = session.scalars(select(Link).where(Link.id == link_id).with_for_update()).first()
            if link is None:
                raise NotFound("No such link", code="link_not_found")
            self._expire_if_due(session, link)
            if link.status != status:
                self._transition(session, link, LinkStatus(status), reason=reason)
                record_audit(
                    session,
                    actor=actor,
                    action=f"link.{status}",
                    target_type="link",
                    target_id=link.id,
                    at=self.clock.now(),
                    details={"reason": reason},
                )
            return self.view(session, link)

    def suspend_for_risk(self, session: Session, link_id: str, reason: str) -> bool:
        """Used by risk rules (transfers) inside their own transaction; True if it suspended."""
        link = session.scalars(select(Link).where(Link.id == link_id).with_for_update()).first()
        if link is None or link.status != LinkStatus.ACTIVE:
            return False
        self._transition(session, link, LinkStatus.SUSPENDED, reason=reason)
        record_audit(
            session,
            actor="risk",
            action="link.suspended",
            target_type="link",
            target_id=link.id,
            at=self.clock.now(),
            details={"reason": reason},
        )
        return True

    def expire_due(self, batch: int = 200) -> int:
        """Worker: move links past their consent expiry or verification window to `expired`."""
        now = self.clock.now()
        with self.db.transaction() as session:
            query = select(Link).where(self._lapsed(now)).order_by(Link.id).limit(batch)
            if self.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            links = session.scalars(query).all()
            for link in links:
                self._transition(
                    session, link, LinkStatus.EXPIRED, reason="consent or verification expired"
                )
        return len(links)

    # --- use -----------------------------------------------------------------------------------

    def usable(
        self, session: Session, partner_id: str, link_id: str, scope: str, *, lock: bool = False
    ) -> Link:
        """An active, unexpired link of this partner whose consent includes `scope`."""
        link = self._own(session, partner_id, link_id, lock=lock)
        status = self.effective_status(link)
        if status != LinkStatus.ACTIVE:
            raise Conflict(f"The link is {status}", code="link_not_active", link_status=status)
        if scope not in link.scopes:
            raise PermissionDenied(
                f"The customer's consent does not include '{scope}'", code="consent_scope_missing"
            )
        return link

    def account_number(self, session: Session, link: Link) -> str:
        return self.vault.reveal(session, link.account_entry_id)

    def balance(self, partner: Principal, link_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            link = self.usable(session, partner.id, link_id, "balance")
            number = self.account_number(session, link)
        balance = self.core.get_balance(number)
        return {
            "link_id": link_id,
            "available": balance.available.to_wire(),
            "ledger": balance.ledger.to_wire(),
            "as_of": rfc3339(balance.as_of),
        }

    def transactions(
        self,
        partner: Principal,
        link_id: str,
        *,
        from_date: date | None,
        to_date: date | None,
        cursor: str | None,
        limit: int,
    ) -> dict[str, Any]:
        today = self.clock.now().date()
        to_date = to_date or today
        from_date = from_date or to_date - timedelta(days=30)
        if from_date > to_date or (to_date - from_date).days > 92:
            raise InvalidRequest(
                "The period must run forwards and span at most 92 days",
                code="invalid_period",
                errors=[
                    {"parameter": "from", "detail": "must be on or before 'to', within 92 days"}
                ],
            )
        with self.db.read() as session:
            link = self.usable(session, partner.id, link_id, "transactions")
            number = self.account_number(session, link)
        token = _decode_page_token(cursor) if cursor else None
        statement = self.core.get_statement(
            account_number=number,
            from_date=from_date,
            to_date=to_date,
            page_token=token,
            page_size=limit,
        )
        return {
            "data": [_entry_view(entry) for entry in statement.entries],
            "has_more": statement.next_page_token is not None,
            "next_cursor": _encode_page_token(statement.next_page_token)
            if statement.next_page_token
            else None,
        }


def _entry_view(entry: StatementEntry) -> dict[str, Any]:
    return {
        "id": entry.entry_reference,
        "amount": entry.amount.to_wire(),
        "direction": "credit" if entry.credit_debit == "CRDT" else "debit",
        "status": "booked" if entry.status == "BOOK" else "pending",
        "booking_date": entry.booking_date.isoformat(),
        "value_date": entry.value_date.isoformat(),
        "reference": entry.external_reference,
        "description": entry.description,
    }


def _encode_page_token(token: str) -> str:
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def _decode_page_token(cursor: str) -> str:
    try:
        return base64.b64decode(
            cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True
        ).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidRequest(
            "The cursor is not one this API issued",
            code="invalid_cursor",
            errors=[{"parameter": "cursor", "detail": "is not a valid cursor"}],
        ) from None
