"""Transfers: debits and credits between a linked account and the partner's settlement account,
holds with capture/void, refunds, limits, risk, step-up, fees, and recovery of unknown outcomes.

Rules that keep money safe:
* No transaction spans a core call. A transfer is committed as `processing` (with its limits
  checked under a lock on the link) *before* the core is called, and its outcome is committed
  after. A crash in between leaves a `processing` row that recovery resolves.
* The transfer id is the core ExternalReference. After a timeout or lost answer the transfer is
  `unknown` and only `GetTransactionStatus` decides it: BOOKED -> succeeded, NOT_FOUND after the
  safe window -> failed. Nothing is ever re-posted under a new reference.
* Refunds reserve their amount on the (locked) transfer before calling the core, so concurrent
  refunds can never add up to more than was captured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adapters.base import (
    CoreBanking,
    CoreBankingError,
    CoreBankingRejected,
    OutcomeUnknown,
    PostingResult,
)
from gateway.domain.clock import Clock, rfc3339
from gateway.domain.errors import (
    Conflict,
    GatewayError,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
)
from gateway.domain.ids import new_id
from gateway.domain.links import LinkStatus
from gateway.domain.money import Money, MoneyError
from gateway.domain.transfers import (
    COUNTS_AGAINST_LIMITS,
    FeeSchedule,
    RefundStatus,
    TransferStatus,
    check_transition,
)
from gateway.observability.logging import get_logger
from gateway.services.links import LinkService
from gateway.services.otp import OtpService
from gateway.services.partners import Principal
from gateway.store.db import Database
from gateway.store.events import record_event
from gateway.store.idempotency import IdempotencyKeys, IdempotencyRequest
from gateway.store.pagination import narrowed, page
from gateway.store.tables import (
    FeeScheduleRow,
    Link,
    Partner,
    PartnerLimit,
    Refund,
    RiskEvent,
    Transfer,
    TransferTransition,
    VaultEntry,
)

log = get_logger("gateway.transfers")
S = TransferStatus
STEP_UP_PURPOSE = "transfer_step_up"

# Called with the outcome transaction and the transfer it just moved (see `create`).
Responder = Callable[[Session, Transfer], None]

# Core refusal codes -> the failure code partners see.
CORE_FAILURES = {
    "INSUFFICIENT_FUNDS": "insufficient_funds",
    "ACCOUNT_INACTIVE": "account_inactive",
    "ACCOUNT_NOT_FOUND": "account_not_found",
    "CURRENCY_MISMATCH": "currency_mismatch",
    "LIMIT_EXCEEDED": "core_limit_exceeded",
    "DEBIT_NOT_ALLOWED": "account_not_eligible",
    "CREDIT_NOT_ALLOWED": "account_not_eligible",
    "HOLD_NOT_FOUND": "hold_not_found",
    "HOLD_EXPIRED": "hold_expired",
    "AMOUNT_EXCEEDS_HOLD": "amount_exceeds_hold",
}


@dataclass(frozen=True)
class TransferPolicy:
    timezone: ZoneInfo
    fee_income_accounts: dict[str, str]
    step_up_thresholds: dict[str, int]  # currency -> minor units
    hold_max: timedelta
    velocity_max: int
    velocity_window: timedelta
    suspend_after_hits: int
    not_found_after: timedelta
    stale_processing: timedelta


class Rejection(Exception):
    """A refusal decided inside a transaction that must still commit (risk records)."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.detail)
        self.error = error


def _money(minor: int, currency: str) -> dict[str, str]:
    return Money(minor, currency).to_wire()


def _when(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment else None


class TransferService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        core: CoreBanking,
        links: LinkService,
        otp: OtpService,
        idempotency: IdempotencyKeys,
        policy: TransferPolicy,
    ) -> None:
        self.db = db
        self.clock = clock
        self.core = core
        self.links = links
        self.otp = otp
        self.idempotency = idempotency
        self.policy = policy

    # --- views -------------------------------------------------------------------------------

    def view(
        self, session: Session, transfer: Transfer, *, history: bool = False
    ) -> dict[str, Any]:
        currency = transfer.currency
        body: dict[str, Any] = {
            "id": transfer.id,
            "link_id": transfer.link_id,
            "direction": transfer.direction,
            "capture_method": transfer.capture_method,
            "status": transfer.status,
            "amount": _money(transfer.amount, currency),
            "amount_captured": _money(transfer.captured_amount, currency),
            "amount_refunded": _money(transfer.refunded_amount, currency),
            "fee": {
                "amount": _money(transfer.fee_amount, currency),
                "status": transfer.fee_status or "none",
            },
            "partner_reference": transfer.partner_reference,
            "description": transfer.description,
            "hold_expires_at": _when(transfer.hold_expires_at),
            "failure": {"code": transfer.failure_code, "message": transfer.failure_message}
            if transfer.failure_code
            else None,
            "next_action": None,
            "settlement_date": transfer.settlement_date.isoformat()
            if transfer.settlement_date
            else None,
            "created_at": rfc3339(transfer.created_at),
            "updated_at": rfc3339(transfer.updated_at),
            "completed_at": _when(transfer.completed_at),
        }
        if transfer.status == S.REQUIRES_ACTION:
            challenge = self.otp.current(session, STEP_UP_PURPOSE, transfer.id)
            if challenge is not None:
                body["next_action"] = {
                    "type": "confirm_otp",
                    "sent_to": challenge.sent_to_mask,
                    "expires_at": rfc3339(challenge.expires_at),
                    "attempts_remaining": self.otp.attempts_remaining(challenge, self.clock.now()),
                }
        if history:
            body["history"] = [
                {"from": t.from_status, "to": t.to_status, "cause": t.cause, "at": rfc3339(t.at)}
                for t in session.scalars(
                    select(TransferTransition)
                    .where(TransferTransition.transfer_id == transfer.id)
                    .order_by(TransferTransition.id)
                )
            ]
        return body

    @staticmethod
    def refund_view(refund: Refund) -> dict[str, Any]:
        return {
            "id": refund.id,
            "transfer_id": refund.transfer_id,
            "status": refund.status,
            "amount": _money(refund.amount, refund.currency),
            "reason": refund.reason,
            "failure": {"code": refund.failure_code, "message": refund.failure_message}
            if refund.failure_code
            else None,
            "created_at": rfc3339(refund.created_at),
            "updated_at": rfc3339(refund.updated_at),
        }

    # --- state changes -----------------------------------------------------------------------

    def _move(
        self,
        session: Session,
        transfer: Transfer,
        target: TransferStatus,
        cause: str,
        **changes: Any,
    ) -> None:
        """The only way a transfer changes state: checked, recorded, and announced."""
        now = self.clock.now()
        check_transition(transfer.status, target)
        session.add(
            TransferTransition(
                transfer_id=transfer.id,
                from_status=transfer.status,
                to_status=target.value,
                cause=cause,
                at=now,
            )
        )
        transfer.status = target.value
        for name, value in changes.items():
            setattr(transfer, name, value)
        if target in (S.FAILED, S.VOIDED) and transfer.fee_status == "pending":
            transfer.fee_status = "waived"  # no money moved: no fee
        transfer.version += 1
        transfer.updated_at = now
        if target in (S.SUCCEEDED, S.FAILED, S.VOIDED) and transfer.completed_at is None:
            transfer.completed_at = now
        session.flush()
        record_event(
            session,
            type=f"transfer.{target.value}",
            resource_type="transfer",
            resource_id=transfer.id,
            sequence=transfer.version,
            data=self.view(session, transfer),
            partner_id=transfer.partner_id,
            at=now,
        )

    def _refund_move(
        self, session: Session, refund: Refund, target: RefundStatus, **changes: Any
    ) -> None:
        now = self.clock.now()
        refund.status = target.value
        for name, value in changes.items():
            setattr(refund, name, value)
        refund.version += 1
        refund.updated_at = now
        session.flush()
        record_event(
            session,
            type=f"refund.{target.value}",
            resource_type="refund",
            resource_id=refund.id,
            sequence=refund.version,
            data=self.refund_view(refund),
            partner_id=refund.partner_id,
            at=now,
        )

    # --- create ------------------------------------------------------------------------------

    def _fee(self, session: Session, partner_id: str, direction: str, amount: Money) -> Money:
        row = session.get(FeeScheduleRow, (partner_id, direction, amount.currency))
        if row is None:
            return Money(0, amount.currency)
        schedule = FeeSchedule(amount.currency, row.fixed, row.rate_ppm, row.minimum, row.maximum)
        return schedule.fee_for(amount)

    def _day_and_month_start(self) -> tuple[datetime, datetime]:
        local = self.clock.now().astimezone(self.policy.timezone)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return day, day.replace(day=1)

    def _risk(
        self,
        session: Session,
        partner_id: str,
        link_id: str,
        rule: str,
        action: str,
        details: dict[str, Any],
        transfer_id: str | None = None,
    ) -> None:
        now = self.clock.now()
        session.add(
            RiskEvent(
                partner_id=partner_id,
                link_id=link_id,
                transfer_id=transfer_id,
                rule=rule,
                action=action,
                details=details,
                at=now,
            )
        )
        if action != "rejected":  # only refusals of the customer's own limits count
            return
        session.flush()
        hits = (
            session.scalar(
                select(func.count())
                .select_from(RiskEvent)
                .where(
                    RiskEvent.link_id == link_id,
                    RiskEvent.action == "rejected",
                    RiskEvent.at >= now - timedelta(hours=24),
                )
            )
            or 0
        )
        if hits >= self.policy.suspend_after_hits and self.links.suspend_for_risk(
            session, link_id, f"risk rule '{rule}' hit {hits} times in 24 h"
        ):
            session.add(
                RiskEvent(
                    partner_id=partner_id,
                    link_id=link_id,
                    rule=rule,
                    action="suspended",
                    details={"hits": hits, "window_hours": 24},
                    at=now,
                )
            )

    def risk_events(self, link_id: str, limit: int) -> dict[str, Any]:
        """Operators: the rule hits on one link, newest first."""
        with self.db.read() as session:
            if session.get(Link, link_id) is None:
                raise NotFound("No such link", code="link_not_found")
            rows = session.scalars(
                select(RiskEvent)
                .where(RiskEvent.link_id == link_id)
                .order_by(RiskEvent.id.desc())
                .limit(limit)
            ).all()
            return {
                "data": [
                    {
                        "rule": row.rule,
                        "action": row.action,
                        "partner_id": row.partner_id,
                        "link_id": row.link_id,
                        "transfer_id": row.transfer_id,
                        "details": row.details,
                        "at": _when(row.at),
                    }
                    for row in rows
                ]
            }

    def _check_limits(
        self, session: Session, partner: Principal, link: Any, direction: str, amount: Money
    ) -> None:
        """Consent limits (debits), partner limits and velocity; raises Rejection."""
        now = self.clock.now()
        recent = (
            session.scalar(
                select(func.count())
                .select_from(Transfer)
                .where(
                    Transfer.link_id == link.id,
                    Transfer.created_at >= now - self.policy.velocity_window,
                )
            )
            or 0
        )
        if recent >= self.policy.velocity_max:
            self._risk(session, partner.id, link.id, "velocity", "rejected", {"count": recent})
            raise Rejection(
                Unprocessable(
                    "Too many transfers on this link in a short time", code="velocity_exceeded"
                )
            )
        if direction == "debit":
            if link.limit_per_transaction is not None and amount.minor > link.limit_per_transaction:
                self._risk(
                    session,
                    partner.id,
                    link.id,
                    "consent_per_transaction",
                    "rejected",
                    {"amount": amount.value},
                )
                raise Rejection(
                    Unprocessable(
                        "The amount exceeds the customer's per-transaction limit",
                        code="limit_exceeded",
                        limit="per_transaction",
                    )
                )
            day, month = self._day_and_month_start()
            for name, limit, since in (
                ("daily", link.limit_daily, day),
                ("monthly", link.limit_monthly, month),
            ):
                if limit is None:
                    continue
                used = (
                    session.scalar(
                        select(func.coalesce(func.sum(Transfer.amount), 0)).where(
                            Transfer.link_id == link.id,
                            Transfer.direction == "debit",
                            Transfer.status.in_([s.value for s in COUNTS_AGAINST_LIMITS]),
                            Transfer.created_at >= since,
                        )
                    )
                    or 0
                )
                if used + amount.minor > limit:
                    self._risk(
                        session,
                        partner.id,
                        link.id,
                        f"consent_{name}",
                        "rejected",
                        {"amount": amount.value},
                    )
                    raise Rejection(
                        Unprocessable(
                            f"The amount exceeds the customer's {name} limit",
                            code="limit_exceeded",
                            limit=name,
                        )
                    )
        partner_limit = session.scalars(
            select(PartnerLimit)
            .where(PartnerLimit.partner_id == partner.id, PartnerLimit.currency == amount.currency)
            .with_for_update()  # serializes this partner's transfers only when a cap exists
        ).first()
        if partner_limit is not None:
            if (
                partner_limit.per_transaction is not None
                and amount.minor > partner_limit.per_transaction
            ):
                self._risk(
                    session,
                    partner.id,
                    link.id,
                    "partner_per_transaction",
                    "capped",
                    {"amount": amount.value},
                )
                raise Rejection(
                    Unprocessable(
                        "The amount exceeds the partner's per-transaction cap",
                        code="partner_limit_exceeded",
                        limit="per_transaction",
                    )
                )
            if partner_limit.daily is not None:
                day, _month = self._day_and_month_start()
                used = (
                    session.scalar(
                        select(func.coalesce(func.sum(Transfer.amount), 0)).where(
                            Transfer.partner_id == partner.id,
                            Transfer.currency == amount.currency,
                            Transfer.status.in_([s.value for s in COUNTS_AGAINST_LIMITS]),
                            Transfer.created_at >= day,
                        )
                    )
                    or 0
                )
                if used + amount.minor > partner_limit.daily:
                    self._risk(
                        session,
                        partner.id,
                        link.id,
                        "partner_daily",
                        "capped",
                        {"amount": amount.value},
                    )
                    raise Rejection(
                        Unprocessable(
                            "The partner's daily cap is reached",
                            code="partner_limit_exceeded",
                            limit="daily",
                        )
                    )

    def _parse_create(self, partner: Principal, body: dict[str, Any]) -> tuple[Money, str, str]:
        try:
            amount = Money.from_wire(body["amount"])
        except MoneyError as exc:
            raise InvalidRequest(
                str(exc),
                code="validation_failed",
                errors=[{"pointer": f"/amount/{exc.field}", "detail": str(exc)}],
            ) from None
        if amount.minor <= 0:
            raise InvalidRequest(
                "The amount must be positive",
                code="validation_failed",
                errors=[{"pointer": "/amount/value", "detail": "must be positive"}],
            )
        direction = body["direction"]
        capture = body.get("capture_method", "automatic")
        if capture == "manual" and direction != "debit":
            raise InvalidRequest(
                "Only debits can be captured manually",
                code="validation_failed",
                errors=[
                    {
                        "pointer": "/capture_method",
                        "detail": "manual capture applies to debits only",
                    }
                ],
            )
        if not partner.settlement_account:
            raise Unprocessable(
                "The partner has no settlement account at the bank",
                code="settlement_account_missing",
            )
        if partner.settlement_currency != amount.currency:
            raise Unprocessable(
                f"The partner settles in {partner.settlement_currency}, not {amount.currency}",
                code="currency_not_supported",
            )
        return amount, direction, capture

    def create(
        self,
        partner: Principal,
        body: dict[str, Any],
        request: IdempotencyRequest,
        *,
        response_status: int | None = None,
    ) -> dict[str, Any]:
        """Create and execute a transfer; returns its view (with history).

        With `response_status`, that view is also stored under the Idempotency-Key in the
        transaction that records the core's outcome, so the outcome, its event and the response
        that retries replay commit together (`request.response_stored` tells the caller).
        """
        amount, direction, capture = self._parse_create(partner, body)
        threshold = self.policy.step_up_thresholds.get(amount.currency)
        step_up = direction == "debit" and threshold is not None and amount.minor >= threshold
        mobile = None
        if step_up:
            with self.db.read() as session:
                link = self.links.usable(session, partner.id, body["link_id"], direction)
                number = self.links.account_number(session, link)
            mobile = self.core.get_account(number).registered_mobile
            if not mobile:
                raise Unprocessable(
                    "This amount needs the customer's confirmation, but the bank "
                    "holds no mobile number for the account",
                    code="no_registered_mobile",
                )
        now = self.clock.now()
        transfer_id = new_id("tr")
        code = None
        rejection: Rejection | None = None
        with self.db.transaction() as session:
            link = self.links.usable(session, partner.id, body["link_id"], direction, lock=True)
            if link.currency != amount.currency:
                raise Unprocessable(
                    "The amount is not in the link's currency", code="currency_mismatch"
                )
            try:
                self._check_limits(session, partner, link, direction, amount)
            except Rejection as caught:  # commit the risk records, then refuse
                rejection = caught
            if rejection is None:
                fee = self._fee(session, partner.id, direction, amount)
                transfer = Transfer(
                    id=transfer_id,
                    partner_id=partner.id,
                    link_id=link.id,
                    direction=direction,
                    capture_method=capture,
                    status=S.CREATED.value,
                    currency=amount.currency,
                    amount=amount.minor,
                    captured_amount=0,
                    refunded_amount=0,
                    refund_reserved=0,
                    fee_amount=fee.minor,
                    fee_status="pending" if fee.minor else None,
                    fee_reference=new_id("fee") if fee.minor else None,
                    hold_reference=new_id("hld") if capture == "manual" else None,
                    partner_reference=body.get("partner_reference"),
                    description=body.get("description"),
                    checks=0,
                    version=0,
                    created_at=now,
                    updated_at=now,
                )
                session.add(transfer)
                session.add(
                    TransferTransition(
                        transfer_id=transfer_id,
                        from_status=None,
                        to_status=S.CREATED.value,
                        cause="requested",
                        at=now,
                    )
                )
                if step_up:
                    session.flush()
                    self.idempotency.attach(session, request, "transfer", transfer_id)
                    assert mobile is not None
                    challenge, code = self.otp.issue(
                        session, purpose=STEP_UP_PURPOSE, subject_id=transfer_id, mobile=mobile
                    )
                    self._risk(
                        session,
                        partner.id,
                        link.id,
                        "step_up_threshold",
                        "step_up",
                        {"amount": amount.value},
                        transfer_id=transfer_id,
                    )
                    self._move(
                        session,
                        transfer,
                        S.REQUIRES_ACTION,
                        "amount at or above the step-up threshold",
                        next_check_at=challenge.expires_at,
                    )
                else:
                    # Moved before its first flush: the row is inserted once, already
                    # `processing` (both transitions and the event are recorded as before).
                    self._move(
                        session,
                        transfer,
                        S.PROCESSING,
                        "created",
                        pending_operation="hold" if capture == "manual" else "post",
                    )
                    self.idempotency.attach(session, request, "transfer", transfer_id)
        if rejection is not None:
            raise rejection.error
        if code is not None and mobile is not None:
            self.otp.deliver(
                mobile=mobile,
                reference=transfer_id,
                text=f"{self.links.policy.bank_name}: {code} confirms a payment of {amount} to "
                f"{partner.name}. Never share it with anyone.",
            )
            return self.get(partner, transfer_id)
        rendered: dict[str, Any] = {}

        def respond(session: Session, transfer: Transfer) -> None:
            rendered.update(self.view(session, transfer, history=True))
            if response_status is not None:
                self.idempotency.complete(request, response_status, rendered, session=session)

        self._execute(transfer_id, respond)
        return rendered or self.get(partner, transfer_id)

    # --- talking to the core -----------------------------------------------------------------

    def _accounts(self, transfer: Transfer, partner_account: str) -> tuple[str, str, str]:
        """(customer account, debit account, credit account) for the main posting."""
        with self.db.read() as session:
            link = self.links.account_number(session, self._link(session, transfer.link_id))
        if transfer.direction == "debit":
            return link, link, partner_account
        return link, partner_account, link

    @staticmethod
    def _link(session: Session, link_id: str) -> Any:
        return session.get(Link, link_id)

    def _partner_account(self, partner_id: str) -> str:
        with self.db.read() as session:
            partner = session.get(Partner, partner_id)
            assert partner is not None and partner.settlement_account
            return partner.settlement_account

    def _posting_inputs(self, transfer_id: str) -> tuple[Transfer, str, str, str]:
        """(transfer, customer account, debit account, credit account): what the core call
        needs, in one read (the transfer, its partner's settlement account and its link's
        vault entry, joined)."""
        with self.db.read() as session:
            transfer, partner_account, entry_id, key_version, ciphertext = session.execute(
                select(
                    Transfer,
                    Partner.settlement_account,
                    VaultEntry.id,
                    VaultEntry.key_version,
                    VaultEntry.ciphertext,
                )
                .join(Partner, Partner.id == Transfer.partner_id)
                .join(Link, Link.id == Transfer.link_id)
                .join(VaultEntry, VaultEntry.id == Link.account_entry_id)
                .where(Transfer.id == transfer_id)
            ).one()
        assert partner_account
        customer = self.links.vault.open(entry_id, key_version, ciphertext)
        if transfer.direction == "debit":
            return transfer, customer, customer, partner_account
        return transfer, customer, partner_account, customer

    def _execute(self, transfer_id: str, respond: Responder | None = None) -> None:
        """Call the core for a transfer committed as `processing`, then commit the outcome
        (and whatever `respond` adds to that transaction)."""
        transfer, customer, debit, credit = self._posting_inputs(transfer_id)
        amount = Money(transfer.amount, transfer.currency)
        description = transfer.description or f"{transfer.direction} {transfer.id}"
        try:
            if transfer.capture_method == "manual":
                expires_at = self.clock.now() + self.policy.hold_max
                hold = self.core.place_hold(
                    hold_reference=transfer.hold_reference or "",
                    account_number=customer,
                    amount=amount,
                    expires_at=expires_at,
                    description=description,
                )
                self._finish(
                    transfer_id,
                    S.AUTHORIZED,
                    "hold placed",
                    respond=respond,
                    hold_expires_at=hold.expires_at or expires_at,
                    next_check_at=hold.expires_at or expires_at,
                    pending_operation=None,
                )
                return
            posting = self.core.post_transfer(
                external_reference=transfer.id,
                debit_account=debit,
                credit_account=credit,
                amount=amount,
                description=description,
            )
            self._booked(transfer_id, posting, "booked by the core", respond=respond)
        except OutcomeUnknown:
            self._unknown(transfer_id, "the core did not answer in time", respond=respond)
        except CoreBankingRejected as exc:
            self._failed(transfer_id, exc, respond=respond)
        except CoreBankingError as exc:
            if exc.core_code == "SYSTEM_UNAVAILABLE":  # a typed refusal: nothing was done
                self._failed(transfer_id, exc, respond=respond)
            else:  # a proxy error or worse: we cannot know, so we ask later
                self._unknown(transfer_id, f"core error {exc.code}", respond=respond)

    def _move_locked(
        self,
        transfer_id: str,
        target: TransferStatus,
        cause: str,
        *,
        respond: Responder | None = None,
        **changes: Any,
    ) -> None:
        """Lock the transfer, move it, (respond,) commit."""
        with self.db.transaction() as session:
            transfer = session.scalars(
                select(Transfer).where(Transfer.id == transfer_id).with_for_update()
            ).one()
            self._move(session, transfer, target, cause, **changes)
            if respond is not None:
                respond(session, transfer)

    _finish = _move_locked

    def _booked(
        self,
        transfer_id: str,
        posting: PostingResult,
        cause: str,
        *,
        respond: Responder | None = None,
    ) -> None:
        with self.db.transaction() as session:
            transfer = session.scalars(
                select(Transfer).where(Transfer.id == transfer_id).with_for_update()
            ).one()
            captured = transfer.captured_amount or transfer.amount
            fee = transfer.fee_amount
            if fee and captured < transfer.amount:
                # A partial capture pays the fee on what was taken, never more than quoted.
                taken = Money(captured, transfer.currency)
                fee = min(
                    fee, self._fee(session, transfer.partner_id, transfer.direction, taken).minor
                )
            self._move(
                session,
                transfer,
                S.SUCCEEDED,
                cause,
                core_reference=posting.core_reference,
                captured_amount=captured,
                pending_operation=None,
                next_check_at=None,
                failure_code=None,
                failure_message=None,
                fee_amount=fee,
                fee_status="pending" if fee else None,
            )
            if respond is not None:
                respond(session, transfer)

    def _unknown(self, transfer_id: str, cause: str, *, respond: Responder | None = None) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            transfer = session.scalars(
                select(Transfer).where(Transfer.id == transfer_id).with_for_update()
            ).one()
            self._move(
                session,
                transfer,
                S.UNKNOWN,
                cause,
                unknown_since=now,
                next_check_at=now + timedelta(seconds=1),
            )
            if respond is not None:
                respond(session, transfer)
        log.warning("transfer_outcome_unknown", transfer_id=transfer_id, cause=cause)

    def _failed(
        self, transfer_id: str, exc: CoreBankingError, *, respond: Responder | None = None
    ) -> None:
        code = CORE_FAILURES.get(exc.core_code, "core_rejected")
        if exc.core_code == "SYSTEM_UNAVAILABLE":
            code = "core_banking_unavailable"
        self._finish(
            transfer_id,
            S.FAILED,
            f"core refused: {exc.core_code}",
            respond=respond,
            failure_code=code,
            failure_message=exc.detail[:300],
            pending_operation=None,
            next_check_at=None,
        )

    def reversed_by_core(self, session: Session, transfer_id: str, cause: str) -> None:
        """The core reversed a booked transfer (learned from its settlement reports): the
        money went back, so the transfer says so (`transfer.reversed`). Reconciliation keeps
        a `reversed_after_settlement` break for operators; a fully refunded transfer stays
        `refunded` (its reversal returned the money twice: the break is the whole story)."""
        transfer = session.scalars(
            select(Transfer).where(Transfer.id == transfer_id).with_for_update()
        ).one_or_none()
        if transfer is None or transfer.status not in (S.SUCCEEDED, S.PARTIALLY_REFUNDED):
            return
        self._move(session, transfer, S.REVERSED, cause, next_check_at=None)
        log.warning("transfer_reversed_by_core", transfer_id=transfer_id)

    # --- step-up -------------------------------------------------------------------------------

    def confirm(self, partner: Principal, transfer_id: str, code: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            transfer = self._own(session, partner.id, transfer_id, lock=True)
            if transfer.status != S.REQUIRES_ACTION:
                raise Conflict(
                    f"The transfer is {transfer.status}, not awaiting confirmation",
                    code="transfer_state_conflict",
                )
            link = self.links.effective_status(self._link(session, transfer.link_id))
            if link != LinkStatus.ACTIVE:
                # Suspended, revoked or lapsed since the request: the customer's code can no
                # longer authorise anything on it.
                self._move(
                    session,
                    transfer,
                    S.FAILED,
                    f"link {link} before confirmation",
                    failure_code="link_not_active",
                    failure_message=f"The link is {link}",
                    next_check_at=None,
                )
                return self.view(session, transfer, history=True)
            result = self.otp.verify(
                session, purpose=STEP_UP_PURPOSE, subject_id=transfer_id, code=code
            )
            if result.outcome == "verified":
                self._move(
                    session,
                    transfer,
                    S.PROCESSING,
                    "confirmed by the customer",
                    pending_operation="hold" if transfer.capture_method == "manual" else "post",
                    next_check_at=None,
                )
            elif result.outcome in ("locked", "expired"):
                self._move(
                    session,
                    transfer,
                    S.FAILED,
                    f"step-up {result.outcome}",
                    failure_code=f"step_up_{result.outcome}",
                    failure_message="The customer did not confirm the payment",
                    next_check_at=None,
                )
        if result.outcome == "invalid":
            raise Unprocessable(
                "The code is not correct",
                code="otp_invalid",
                attempts_remaining=result.attempts_remaining,
            )
        if result.outcome == "verified":
            self._execute(transfer_id)
        return self.get(partner, transfer_id)

    # --- capture and void --------------------------------------------------------------------

    def capture(self, partner: Principal, transfer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.db.transaction() as session:
            transfer = self._own(session, partner.id, transfer_id, lock=True)
            self._require_idle_hold(transfer)
            amount = Money(transfer.amount, transfer.currency)
            if body.get("amount") is not None:
                try:
                    amount = Money.from_wire(body["amount"])
                except MoneyError as exc:
                    raise InvalidRequest(
                        str(exc),
                        code="validation_failed",
                        errors=[{"pointer": f"/amount/{exc.field}", "detail": str(exc)}],
                    ) from None
            if amount.currency != transfer.currency or not 0 < amount.minor <= transfer.amount:
                raise Unprocessable(
                    "The capture amount must be positive, in the transfer's "
                    "currency and at most the amount held",
                    code="amount_exceeds_hold",
                )
            if transfer.hold_expires_at and transfer.hold_expires_at <= self.clock.now():
                raise Conflict("The hold has expired", code="hold_expired")
            transfer.pending_operation = "capture"
            transfer.captured_amount = amount.minor
            transfer.next_check_at = None  # recovery's to check if this process never returns
            transfer.updated_at = self.clock.now()
            hold_reference = transfer.hold_reference
        partner_account = self._partner_account(transfer.partner_id)
        _customer, debit, credit = self._accounts(transfer, partner_account)
        try:
            posting = self.core.post_transfer(
                external_reference=transfer_id,
                debit_account=debit,
                credit_account=credit,
                amount=amount,
                description=transfer.description or f"capture {transfer_id}",
                hold_reference=hold_reference,
            )
            self._booked(transfer_id, posting, f"captured {amount.value}")
        except OutcomeUnknown:
            self._unknown(transfer_id, "capture: the core did not answer in time")
        except CoreBankingRejected as exc:
            self._capture_not_booked(transfer_id, f"capture refused: {exc.core_code}")
            raise Unprocessable(
                f"The core refused the capture ({exc.core_code})",
                code=CORE_FAILURES.get(exc.core_code, "core_rejected"),
            ) from exc
        except CoreBankingError as exc:
            if exc.core_code != "SYSTEM_UNAVAILABLE":  # a proxy error or worse: ask later
                self._unknown(transfer_id, f"capture: core error {exc.code}")
                return self.get(partner, transfer_id)
            self._capture_not_booked(transfer_id, "capture: core banking unavailable")
            raise ServiceUnavailable(
                "Core banking is unavailable; the hold is unchanged, try the capture again",
                code="core_banking_unavailable",
            ) from exc
        return self.get(partner, transfer_id)

    @staticmethod
    def _require_idle_hold(transfer: Transfer) -> None:
        """Capture and void act on an authorized hold nobody else is acting on: a second
        request (under another Idempotency-Key) while one is at the core gets 409."""
        if transfer.status != S.AUTHORIZED:
            raise Conflict(
                f"The transfer is {transfer.status}, not authorized",
                code="transfer_state_conflict",
            )
        if transfer.pending_operation is not None:
            raise Conflict(
                f"A {transfer.pending_operation} of this transfer is in progress",
                code="operation_in_progress",
            )

    def _capture_not_booked(self, transfer_id: str, cause: str) -> None:
        """The core booked no capture: the hold stands as it was, ready for another capture
        or a void. Only the capture that set `pending_operation` may clear it."""
        with self.db.transaction() as session:
            transfer = session.scalars(
                select(Transfer).where(Transfer.id == transfer_id).with_for_update()
            ).one()
            if transfer.status != S.AUTHORIZED or transfer.pending_operation != "capture":
                return
            transfer.pending_operation = None
            transfer.captured_amount = 0
            transfer.next_check_at = transfer.hold_expires_at
            transfer.updated_at = self.clock.now()
        log.info("capture_not_booked", transfer_id=transfer_id, cause=cause)

    def void(self, partner: Principal, transfer_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            transfer = self._own(session, partner.id, transfer_id, lock=True)
            self._require_idle_hold(transfer)
            transfer.pending_operation = "release"
            transfer.next_check_at = None
        self._release(transfer_id, "voided by the partner")
        return self.get(partner, transfer_id)

    def _release(self, transfer_id: str, cause: str) -> None:
        with self.db.read() as session:
            transfer = session.get(Transfer, transfer_id)
            assert transfer is not None and transfer.hold_reference
        try:
            self.core.release_hold(hold_reference=transfer.hold_reference)
        except CoreBankingRejected as exc:
            if exc.core_code not in ("HOLD_NOT_FOUND", "HOLD_EXPIRED", "HOLD_RELEASED"):
                raise
        except CoreBankingError:
            if transfer.status == S.AUTHORIZED:
                self._unknown(transfer_id, f"{cause}: release not confirmed")
            return
        self._finish(transfer_id, S.VOIDED, cause, pending_operation=None, next_check_at=None)

    # --- refunds -------------------------------------------------------------------------------

    def refund(
        self,
        partner: Principal,
        transfer_id: str,
        body: dict[str, Any],
        request: IdempotencyRequest,
    ) -> dict[str, Any]:
        try:
            amount = Money.from_wire(body["amount"])
        except MoneyError as exc:
            raise InvalidRequest(
                str(exc),
                code="validation_failed",
                errors=[{"pointer": f"/amount/{exc.field}", "detail": str(exc)}],
            ) from None
        now = self.clock.now()
        with self.db.transaction() as session:
            transfer = self._own(session, partner.id, transfer_id, lock=True)  # serializes refunds
            if transfer.direction != "debit":
                raise Unprocessable("Only debits can be refunded", code="refund_not_supported")
            if transfer.status not in (S.SUCCEEDED, S.PARTIALLY_REFUNDED):
                raise Conflict(
                    f"A {transfer.status} transfer cannot be refunded",
                    code="transfer_not_refundable",
                )
            if amount.currency != transfer.currency or amount.minor <= 0:
                raise Unprocessable(
                    "The refund must be positive and in the transfer's currency",
                    code="invalid_refund_amount",
                )
            available = (
                transfer.captured_amount - transfer.refunded_amount - transfer.refund_reserved
            )
            if amount.minor > available:
                left = Money(max(available, 0), amount.currency)
                raise Unprocessable(
                    f"At most {left.value} can still be refunded",
                    code="refund_exceeds_captured",
                    refundable=Money(max(available, 0), amount.currency).to_wire(),
                )
            transfer.refund_reserved += amount.minor
            refund = Refund(
                id=new_id("rf"),
                transfer_id=transfer.id,
                partner_id=partner.id,
                status=RefundStatus.PROCESSING.value,
                currency=amount.currency,
                amount=amount.minor,
                reason=body.get("reason"),
                checks=0,
                version=0,
                created_at=now,
                updated_at=now,
            )
            session.add(refund)
            session.flush()
            self.idempotency.attach(session, request, "refund", refund.id)
            self._refund_move(session, refund, RefundStatus.PROCESSING)
        self._execute_refund(refund.id)
        return self.get_refund(partner, refund.id)

    def _execute_refund(self, refund_id: str) -> None:
        with self.db.read() as session:
            refund = session.get(Refund, refund_id)
            assert refund is not None
            transfer = session.get(Transfer, refund.transfer_id)
            assert transfer is not None
        partner_account = self._partner_account(refund.partner_id)
        customer, _debit, _credit = self._accounts(transfer, partner_account)
        try:
            posting = self.core.post_transfer(
                external_reference=refund_id,
                debit_account=partner_account,
                credit_account=customer,
                amount=Money(refund.amount, refund.currency),
                description=refund.reason or f"refund of {transfer.id}",
            )
        except OutcomeUnknown:
            self._refund_unknown(refund_id)
            return
        except CoreBankingRejected as exc:
            self._refund_settle(refund_id, None, exc)
            return
        except CoreBankingError as exc:
            if exc.core_code == "SYSTEM_UNAVAILABLE":
                self._refund_settle(refund_id, None, exc)
            else:
                self._refund_unknown(refund_id)
            return
        self._refund_settle(refund_id, posting.core_reference, None)

    def _refund_unknown(self, refund_id: str) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            refund = session.scalars(
                select(Refund).where(Refund.id == refund_id).with_for_update()
            ).one()
            if refund.status == RefundStatus.PROCESSING:
                self._refund_move(
                    session,
                    refund,
                    RefundStatus.UNKNOWN,
                    unknown_since=now,
                    next_check_at=now + timedelta(seconds=1),
                )

    def _refund_settle(
        self, refund_id: str, core_reference: str | None, error: CoreBankingError | None
    ) -> None:
        """Book the refund's outcome on the refund and its transfer (both locked)."""
        with self.db.transaction() as session:
            refund = session.scalars(
                select(Refund).where(Refund.id == refund_id).with_for_update()
            ).one()
            transfer = session.scalars(
                select(Transfer).where(Transfer.id == refund.transfer_id).with_for_update()
            ).one()
            if refund.status not in (RefundStatus.PROCESSING, RefundStatus.UNKNOWN):
                return
            transfer.refund_reserved -= refund.amount
            if error is None:
                transfer.refunded_amount += refund.amount
                full = transfer.refunded_amount >= transfer.captured_amount
                self._refund_move(
                    session,
                    refund,
                    RefundStatus.SUCCEEDED,
                    core_reference=core_reference,
                    next_check_at=None,
                )
                self._move(
                    session,
                    transfer,
                    S.REFUNDED if full else S.PARTIALLY_REFUNDED,
                    f"refund {refund.id} of {Money(refund.amount, refund.currency).value}",
                )
            else:
                code = CORE_FAILURES.get(error.core_code, "core_rejected")
                self._refund_move(
                    session,
                    refund,
                    RefundStatus.FAILED,
                    failure_code=code,
                    failure_message=error.detail[:300],
                    next_check_at=None,
                )

    # --- reads ---------------------------------------------------------------------------------

    def _own(
        self, session: Session, partner_id: str, transfer_id: str, *, lock: bool = False
    ) -> Transfer:
        query = select(Transfer).where(
            Transfer.id == transfer_id, Transfer.partner_id == partner_id
        )
        if lock:
            query = query.with_for_update()
        transfer = session.scalars(query).first()
        if transfer is None:
            raise NotFound("No such transfer", code="transfer_not_found")
        return transfer

    def get(self, partner: Principal, transfer_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            return self.view(session, self._own(session, partner.id, transfer_id), history=True)

    def page(
        self,
        partner: Principal,
        *,
        cursor: str | None,
        limit: int,
        status: str | None,
        link_id: str | None,
        created_from: datetime | None,
        created_to: datetime | None,
    ) -> dict[str, Any]:
        query = narrowed(
            select(Transfer).where(Transfer.partner_id == partner.id),
            {Transfer.status: status, Transfer.link_id: link_id},
            Transfer.created_at,
            created_from,
            created_to,
        )
        with self.db.read() as session:
            return page(
                session,
                query,
                Transfer.id,
                cursor=cursor,
                limit=limit,
                render=lambda transfer: self.view(session, transfer),
            )

    def get_refund(self, partner: Principal, refund_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            refund = session.scalars(
                select(Refund).where(Refund.id == refund_id, Refund.partner_id == partner.id)
            ).first()
            if refund is None:
                raise NotFound("No such refund", code="refund_not_found")
            return self.refund_view(refund)

    def list_refunds(self, partner: Principal, transfer_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            self._own(session, partner.id, transfer_id)
            refunds = session.scalars(
                select(Refund).where(Refund.transfer_id == transfer_id).order_by(Refund.id)
            ).all()
            return {
                "data": [self.refund_view(r) for r in refunds],
                "has_more": False,
                "next_cursor": None,
            }

    def resume(self, partner: Principal, resource_id: str) -> dict[str, Any]:
        """Render what an earlier attempt under the same Idempotency-Key created."""
        if resource_id.startswith("rf_"):
            return self.get_refund(partner, resource_id)
        return self.get(partner, resource_id)
