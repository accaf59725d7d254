"""Payouts: a bank channel sends money from a customer's account to a wallet at a provider.

```
commit `created` ─▶ PlaceHold(hld_…) ─▶ provider payout (idempotency key = payout id)
   ─▶ answer now, by callback, or by polling ─▶ decide ONCE: capture | release
   capture: PostTransfer(ref = payout id, customer → provider clearing, HoldReference) ─▶ succeeded
   release: ReleaseHold ─▶ failed
```

Rules that keep money safe:
* No transaction spans a call to the core or a provider; every step is committed before the
  next call and its outcome after, so a crash leaves a row the recovery worker can finish.
* The decision (capture or release) is taken under a row lock and never changes
  (`gateway.domain.payouts.decide`): a late, contradicting provider answer is recorded as an
  anomaly for an operator, never a second movement of money. Carrying the decision out is
  claimed with a lease, so two workers never post at the same time.
* A lost answer is resolved by asking, never by guessing: the provider's status API for the
  payout (`payout_status`), `GetTransactionStatus` for a capture (never a second posting), and
  `ReleaseHold` (safe to repeat) for a hold whose placement is in doubt.
* Unsigned provider notifications are hints: the status is fetched before anything applies.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.base import (
    AccountIdentifier,
    ChecksPayouts,
    CoreBanking,
    CoreBankingError,
    CoreBankingRejected,
    CoreBankingUnavailable,
    NotSupportedByProvider,
    PayoutRequest,
    PayoutResult,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRefs,
    ProviderRejected,
    ProviderUnavailable,
    UnknownProviderStatus,
    WalletProvider,
)
from gateway.domain.clock import Clock, rfc3339
from gateway.domain.errors import (
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
    Unprocessable,
)
from gateway.domain.ids import new_id
from gateway.domain.links import normalize_account_number
from gateway.domain.money import Money, MoneyError
from gateway.domain.payouts import (
    TERMINAL,
    Decision,
    DecisionConflict,
    PayoutStatus,
    check_transition,
    decide,
    outcome_of,
)
from gateway.observability.logging import get_logger, mask
from gateway.observability.metrics import PAYOUT_ANOMALIES, PAYOUTS
from gateway.services.partners import Principal
from gateway.store.audit import record_audit
from gateway.store.db import Database
from gateway.store.events import record_event
from gateway.store.idempotency import IdempotencyKeys, IdempotencyRequest
from gateway.store.pagination import narrowed, page
from gateway.store.tables import Payout, PayoutTransition
from gateway.vault import Vault

log = get_logger("gateway.payouts")
S = PayoutStatus
SOURCE_PURPOSE = "payout_source_account"
RECIPIENT_PURPOSE = "payout_recipient"
# A claim on a payout (recovery, or carrying out its decision) lasts this long.
LEASE = timedelta(seconds=30)
# Resends of a payout the provider keeps saying it never got, before an operator must look.
MAX_SENDS = 5
MSISDN = re.compile(r"^\+?[0-9]{6,15}$")
RELEASED_ALREADY = frozenset({"HOLD_NOT_FOUND", "HOLD_EXPIRED", "HOLD_RELEASED"})
HOLD_GONE = frozenset({"HOLD_NOT_FOUND", "HOLD_EXPIRED"})
# Core refusals of the hold -> the failure code bank channels see.
CORE_FAILURES = {
    "INSUFFICIENT_FUNDS": "insufficient_funds",
    "ACCOUNT_INACTIVE": "account_inactive",
    "ACCOUNT_NOT_FOUND": "account_not_found",
    "CURRENCY_MISMATCH": "currency_mismatch",
    "LIMIT_EXCEEDED": "core_limit_exceeded",
    "DEBIT_NOT_ALLOWED": "account_not_eligible",
}


class Providers(Protocol):
    """What the service needs of the provider registry (`adapters.providers.registry`)."""

    def ids(self) -> list[str]: ...

    def __contains__(self, provider_id: object) -> bool: ...

    def get(self, provider_id: str) -> WalletProvider: ...

    def clearing_account(self, provider_id: str, currency: str) -> str | None: ...

    def callback_url(self, provider_id: str) -> str: ...


@dataclass(frozen=True)
class PayoutPolicy:
    hold: timedelta  # expiry of the customer hold
    poll: timedelta  # first status query of a payout still pending at the provider
    poll_max: timedelta
    not_found_after: timedelta  # provider has no record this long after sending: send again
    stale: timedelta  # a step in flight this long is looked at by recovery
    clearing_check_ttl: timedelta = timedelta(minutes=5)


def _recipient_secret(recipient: AccountIdentifier) -> str:
    """What the vault keeps of a recipient: the identifier, or, when the provider needs the
    holder's name too, both as a small JSON document (identifiers never start with `{`)."""
    if recipient.name is None:
        return recipient.value
    return json.dumps({"value": recipient.value, "name": recipient.name}, ensure_ascii=False)


def _recipient_from(kind: str, secret: str) -> AccountIdentifier:
    if secret.startswith("{"):
        document = json.loads(secret)
        return AccountIdentifier(kind, str(document["value"]), str(document["name"]))
    return AccountIdentifier(kind, secret)


def _money(minor: int, currency: str) -> dict[str, str]:
    return Money(minor, currency).to_wire()


def _when(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment else None


def _next_action(payout: Payout) -> dict[str, Any] | None:
    """The recipient's pending step at the provider, as partners see it (None when none)."""
    action = payout.recipient_action
    if not action or payout.status in TERMINAL:
        return None
    details = {key: value for key, value in action.items() if key != "type"}
    return {"type": "recipient_confirmation", "provider_action": action.get("type"), **details}


class PayoutService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        core: CoreBanking,
        vault: Vault,
        providers: Providers,
        idempotency: IdempotencyKeys,
        policy: PayoutPolicy,
    ) -> None:
        self.db = db
        self.clock = clock
        self.core = core
        self.vault = vault
        self.providers = providers
        self.idempotency = idempotency
        self.policy = policy
        self._clearing_checked: dict[str, float] = {}
        self._clearing_lock = threading.Lock()

    # --- views ---------------------------------------------------------------------------------

    def view(self, session: Session, payout: Payout, *, history: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": payout.id,
            "provider": payout.provider,
            "status": payout.status,
            "amount": _money(payout.amount, payout.currency),
            "source_account": {"masked": payout.source_account_mask},
            "recipient": {"type": payout.recipient_type, "masked": payout.recipient_mask},
            "description": payout.description,
            "partner_reference": payout.partner_reference,
            "provider_reference": payout.provider_reference,
            "failure": {"code": payout.failure_code, "message": payout.failure_message}
            if payout.failure_code and payout.status == S.FAILED
            else None,
            "created_at": rfc3339(payout.created_at),
            "updated_at": rfc3339(payout.updated_at),
            "completed_at": _when(payout.completed_at),
            "next_action": _next_action(payout),
        }
        if history:
            body["history"] = [
                {
                    "from": t.from_status,
                    "to": t.to_status,
                    "step": t.step,
                    "cause": t.cause,
                    "at": rfc3339(t.at),
                }
                for t in session.scalars(
                    select(PayoutTransition)
                    .where(PayoutTransition.payout_id == payout.id)
                    .order_by(PayoutTransition.id)
                )
            ]
        return body

    # --- recording -----------------------------------------------------------------------------

    def _step(
        self,
        session: Session,
        payout: Payout,
        step: str,
        cause: str,
        *,
        to: PayoutStatus | None = None,
        **changes: Any,
    ) -> None:
        """The only way a payout changes: checked, recorded with its cause, and announced when
        its status changes (or the recipient has something new to do)."""
        now = self.clock.now()
        action_before = payout.recipient_action
        for name, value in changes.items():
            setattr(payout, name, value)
        previous = payout.status
        if to is not None and to != previous:
            check_transition(
                previous,
                to,
                decision=payout.decision,
                hold_placed=payout.hold_status not in ("none",),
            )
            payout.status = to.value
            if to in TERMINAL:
                payout.completed_at = now
                payout.next_check_at = None
        session.add(
            PayoutTransition(
                payout_id=payout.id,
                from_status=previous,
                to_status=payout.status,
                step=step,
                cause=cause[:300],
                at=now,
            )
        )
        payout.version += 1
        payout.updated_at = now
        session.flush()
        # A new recipient action is news too: the channel must pass it to the recipient.
        if payout.status != previous or (
            payout.recipient_action and payout.recipient_action != action_before
        ):
            record_event(
                session,
                type=f"payout.{payout.status}",
                resource_type="payout",
                resource_id=payout.id,
                sequence=payout.version,
                data=self.view(session, payout),
                partner_id=payout.partner_id,
                at=now,
            )
            if payout.status in (S.SUCCEEDED, S.FAILED):
                PAYOUTS.labels(payout.provider, payout.status).inc()

    def _anomaly(
        self, session: Session, payout: Payout, kind: str, details: dict[str, Any]
    ) -> None:
        """Something only an operator can settle: recorded, counted, logged; money untouched."""
        PAYOUT_ANOMALIES.labels(payout.provider, kind).inc()
        log.error("payout_anomaly", payout_id=payout.id, provider=payout.provider, kind=kind)
        record_audit(
            session,
            actor="system:payouts",
            action=f"payout.anomaly.{kind}",
            target_type="payout",
            target_id=payout.id,
            at=self.clock.now(),
            details=details,
        )
        self._step(session, payout, f"anomaly_{kind}", f"needs an operator: {kind}")

    @staticmethod
    def _locked(session: Session, payout_id: str) -> Payout:
        return session.scalars(select(Payout).where(Payout.id == payout_id).with_for_update()).one()

    def _backoff(self, checks: int) -> timedelta:
        return min(self.policy.poll * (2 ** min(max(checks - 1, 0), 12)), self.policy.poll_max)

    # --- create --------------------------------------------------------------------------------

    def _parse(
        self, partner: Principal, body: dict[str, Any]
    ) -> tuple[Money, str, WalletProvider, AccountIdentifier, str, str]:
        if partner.kind != "bank_channel":
            raise PermissionDenied(
                "Payouts are sent by the bank's own channels", code="bank_channel_only"
            )
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
        provider_id = body["provider"]
        if provider_id not in self.providers:
            raise Unprocessable(
                f"The provider {provider_id!r} is not enabled",
                code="provider_not_enabled",
                errors=[{"pointer": "/provider", "detail": "not an enabled provider"}],
            )
        adapter = self.providers.get(provider_id)
        if not adapter.capabilities.payout:
            raise Unprocessable(
                "This provider does not take payouts", code="not_supported_by_provider"
            )
        recipient = self.recipient(
            adapter,
            body["recipient"]["type"],
            body["recipient"]["value"],
            name=body["recipient"].get("name"),
        )
        clearing = self.providers.clearing_account(provider_id, amount.currency)
        if clearing is None:
            raise Unprocessable(
                f"Payouts through {provider_id} are not offered in {amount.currency}",
                code="currency_not_supported",
                errors=[{"pointer": "/amount/currency", "detail": "not offered by the provider"}],
            )
        if isinstance(adapter, ChecksPayouts):
            # What the provider would refuse is refused before any money is held.
            try:
                adapter.check_payout(amount, recipient)
            except ProviderError as exc:
                pointer = (
                    "/recipient/name"
                    if "name" in exc.code
                    else "/amount/currency"
                    if "currency" in exc.code
                    else "/amount/value"
                    if exc.code.startswith("amount_")
                    else "/recipient"
                )
                raise Unprocessable(
                    exc.detail, code=exc.code, errors=[{"pointer": pointer, "detail": exc.detail}]
                ) from None
        source = normalize_account_number(body["source_account"])
        return amount, provider_id, adapter, recipient, clearing, source

    @staticmethod
    def recipient(
        adapter: WalletProvider, kind: str, value: str, *, name: str | None = None
    ) -> AccountIdentifier:
        """A recipient identifier checked against what the provider accepts."""
        if kind not in adapter.capabilities.identifier_types:
            raise Unprocessable(
                f"This provider identifies wallets by "
                f"{', '.join(adapter.capabilities.identifier_types)}",
                code="recipient_type_not_supported",
                errors=[{"pointer": "/recipient/type", "detail": "not accepted by the provider"}],
            )
        cleaned = re.sub(r"[\s\-()]", "", value) if kind == "msisdn" else value.strip()
        if kind == "msisdn" and not MSISDN.match(cleaned):
            raise InvalidRequest(
                "The mobile number must have 6 to 15 digits, optionally after a +",
                code="validation_failed",
                errors=[{"pointer": "/recipient/value", "detail": "not a mobile number"}],
            )
        if not cleaned:
            raise InvalidRequest(
                "The recipient identifier is empty",
                code="validation_failed",
                errors=[{"pointer": "/recipient/value", "detail": "must not be empty"}],
            )
        holder = " ".join(name.split()) if name else None
        if name is not None and not holder:
            raise InvalidRequest(
                "The recipient's name is empty",
                code="validation_failed",
                errors=[{"pointer": "/recipient/name", "detail": "must not be empty"}],
            )
        return AccountIdentifier(kind, cleaned, holder)

    def _check_clearing(self, account: str, currency: str) -> None:
        """The clearing account exists, is open, takes credits and is in the currency: checked
        before any customer money is held (a bad one would fail only at capture, after the
        provider paid), and remembered for a few minutes."""
        key = f"{account}:{currency}"
        now = time.monotonic()
        with self._clearing_lock:
            checked = self._clearing_checked.get(key)
        if checked is not None and now - checked < self.policy.clearing_check_ttl.total_seconds():
            return
        try:
            info = self.core.get_account(account)
        except CoreBankingRejected as exc:
            log.error("clearing_account_unusable", account=mask(account), core_code=exc.core_code)
            raise ServiceUnavailable(
                "Payouts through this provider are unavailable", code="provider_not_configured"
            ) from None
        except CoreBankingError as exc:
            raise ServiceUnavailable(
                "Core banking is unavailable; nothing was done", code="core_banking_unavailable"
            ) from exc
        if info.currency != currency or info.status != "ACTIVE" or not info.credit_allowed:
            log.error(
                "clearing_account_unusable",
                account=mask(account),
                currency=info.currency,
                status=info.status,
            )
            raise ServiceUnavailable(
                "Payouts through this provider are unavailable", code="provider_not_configured"
            )
        with self._clearing_lock:
            self._clearing_checked[key] = now

    def create(
        self, partner: Principal, body: dict[str, Any], request: IdempotencyRequest
    ) -> dict[str, Any]:
        amount, provider_id, adapter, recipient, clearing, source = self._parse(partner, body)
        self._check_clearing(clearing, amount.currency)
        now = self.clock.now()
        payout_id = new_id("po")
        with self.db.transaction() as session:
            source_entry = self.vault.store(session, purpose=SOURCE_PURPOSE, plaintext=source)
            recipient_entry = self.vault.store(
                session, purpose=RECIPIENT_PURPOSE, plaintext=_recipient_secret(recipient)
            )
            session.flush()  # the vault rows first: the payout refers to them
            payout = Payout(
                id=payout_id,
                partner_id=partner.id,
                provider=provider_id,
                status=S.CREATED.value,
                currency=amount.currency,
                amount=amount.minor,
                source_account_entry_id=source_entry,
                source_account_mask=mask(source),
                recipient_type=recipient.type,
                recipient_entry_id=recipient_entry,
                recipient_mask=mask(recipient.value),
                description=body.get("description"),
                partner_reference=body.get("partner_reference"),
                clearing_account=clearing,
                hold_reference=new_id("hld"),
                hold_status="placing",
                provider_state="not_sent",
                provider_idempotency_key=adapter.idempotency_key(payout_id),
                provider_sends=0,
                settle_attempts=0,
                checks=0,
                # If this process dies before the hold's outcome is recorded, recovery releases.
                next_check_at=now + self.policy.stale,
                version=1,
                created_at=now,
                updated_at=now,
            )
            session.add(payout)
            session.add(
                PayoutTransition(
                    payout_id=payout_id,
                    from_status=None,
                    to_status=S.CREATED.value,
                    step="requested",
                    cause="requested by the bank channel",
                    at=now,
                )
            )
            session.flush()
            self.idempotency.attach(session, request, "payout", payout_id)
            record_event(
                session,
                type="payout.created",
                resource_type="payout",
                resource_id=payout_id,
                sequence=payout.version,
                data=self.view(session, payout),
                partner_id=partner.id,
                at=now,
            )
        log.info("payout_created", payout_id=payout_id, provider=provider_id)
        if self._place_hold(payout_id):
            self._send(payout_id)
        return self.get(partner, payout_id)

    # --- the hold ------------------------------------------------------------------------------

    def _reveal(self, entry_id: str) -> str:
        with self.db.read() as session:
            return self.vault.reveal(session, entry_id)

    def _place_hold(self, payout_id: str) -> bool:
        """Hold the amount on the customer's account; True when the hold is placed."""
        with self.db.read() as session:
            payout = session.get(Payout, payout_id)
            assert payout is not None
        expires_at = self.clock.now() + self.policy.hold
        try:
            hold = self.core.place_hold(
                hold_reference=payout.hold_reference,
                account_number=self._reveal(payout.source_account_entry_id),
                amount=Money(payout.amount, payout.currency),
                expires_at=expires_at,
                description=(payout.description or f"payout {payout.id}")[:140],
            )
        except CoreBankingRejected as exc:
            self._hold_refused(payout_id, CORE_FAILURES.get(exc.core_code, "core_rejected"), exc)
            return False
        except CoreBankingUnavailable as exc:
            self._hold_refused(payout_id, "core_banking_unavailable", exc)
            return False
        except CoreBankingError as exc:  # a timeout, or an answer we cannot read: maybe placed
            now = self.clock.now()
            with self.db.transaction() as session:
                payout = self._locked(session, payout_id)
                self._step(
                    session,
                    payout,
                    "hold_unconfirmed",
                    f"hold placement not confirmed ({exc.code})",
                    to=S.UNKNOWN,
                    hold_status="unconfirmed",
                    unknown_since=now,
                    # Give a slow core time to finish before the hold is released.
                    next_check_at=now + self.policy.stale,
                )
            log.warning("payout_hold_unconfirmed", payout_id=payout_id, code=exc.code)
            return False
        now = self.clock.now()
        with self.db.transaction() as session:
            payout = self._locked(session, payout_id)
            self._step(
                session,
                payout,
                "hold_placed",
                "funds held on the customer's account",
                to=S.PROCESSING,
                hold_status="placed",
                hold_expires_at=hold.expires_at or expires_at,
                provider_state="sending",
                provider_sends=payout.provider_sends + 1,
                provider_sent_at=now,
                # While the provider is called: if this process dies, recovery asks it.
                next_check_at=now + self.policy.stale,
            )
        return True

    def _hold_refused(self, payout_id: str, code: str, exc: CoreBankingError) -> None:
        with self.db.transaction() as session:
            payout = self._locked(session, payout_id)
            self._step(
                session,
                payout,
                "hold_refused",
                f"the core refused the hold ({exc.core_code})",
                to=S.FAILED,
                hold_status="none",
                failure_code=code,
                failure_message=exc.detail[:300],
            )

    # --- the provider --------------------------------------------------------------------------

    def _request(self, payout: Payout) -> PayoutRequest:
        return PayoutRequest(
            reference=payout.id,
            idempotency_key=payout.provider_idempotency_key,
            amount=Money(payout.amount, payout.currency),
            recipient=_recipient_from(
                payout.recipient_type, self._reveal(payout.recipient_entry_id)
            ),
            description=payout.description or "",
            callback_url=self.providers.callback_url(payout.provider),
        )

    def _send(self, payout_id: str) -> None:
        """Ask the provider to pay (first time, or again under the same idempotency key)."""
        with self.db.read() as session:
            payout = session.get(Payout, payout_id)
            assert payout is not None
        adapter = self.providers.get(payout.provider)
        try:
            result = adapter.payout(self._request(payout))
        except (ProviderOutcomeUnknown, UnknownProviderStatus) as exc:
            self._provider_unknown(payout_id, f"payout outcome unknown ({exc.code})")
            return
        except (ProviderRejected, ProviderUnavailable, NotSupportedByProvider) as exc:
            # Refused or not reachable: the provider did not take the payout.
            result = PayoutResult(
                state="failed",
                provider_status="not_taken",
                failure_code=exc.code,
                failure_message=exc.detail,
                provider_code=exc.provider_code,
            )
        except ProviderError as exc:
            self._provider_unknown(payout_id, f"payout outcome unknown ({exc.code})")
            return
        self.apply(payout_id, result, "provider answer")

    def _provider_unknown(self, payout_id: str, cause: str) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            payout = self._locked(session, payout_id)
            if payout.decision is not None or payout.status in TERMINAL:
                return  # a callback settled it meanwhile
            self._step(
                session,
                payout,
                "provider_unknown",
                cause,
                to=S.UNKNOWN,
                provider_state="unknown",
                unknown_since=payout.unknown_since or now,
                next_check_at=now + timedelta(seconds=2),
            )
        log.warning("payout_outcome_unknown", payout_id=payout_id, cause=cause)

    def apply(self, payout_id: str, result: PayoutResult, source: str) -> None:
        """Record what the provider says; a final answer decides the payout (once), and the
        decision is then carried out."""
        now = self.clock.now()
        with self.db.transaction() as session:
            payout = self._locked(session, payout_id)
            if result.request_id and not payout.provider_request_id:
                payout.provider_request_id = result.request_id
            if result.transaction_reference and not payout.provider_reference:
                payout.provider_reference = result.transaction_reference
            payout.provider_status = result.provider_status
            expected = Money(payout.amount, payout.currency)
            if result.amount is not None and result.amount != expected:
                payout.next_check_at = None
                self._anomaly(
                    session,
                    payout,
                    "amount_mismatch",
                    {"expected": expected.to_wire(), "reported": result.amount.to_wire()},
                )
                return
            if result.echoed_reference is not None and result.echoed_reference != payout.id:
                payout.next_check_at = None
                self._anomaly(session, payout, "reference_mismatch", {"source": source})
                return
            wanted = {"succeeded": Decision.CAPTURE, "failed": Decision.RELEASE}.get(result.state)
            if payout.decision is not None or payout.status in TERMINAL:
                if wanted is not None and payout.decision is not None:
                    try:
                        decide(payout.decision, wanted)
                    except DecisionConflict as conflict:
                        self._anomaly(
                            session,
                            payout,
                            "provider_contradiction",
                            {
                                "decided": conflict.decided.value,
                                "reported": result.state,
                                "source": source,
                            },
                        )
                return
            if wanted is None:
                self._not_final(session, payout, result, source, now)
                return
            decision = decide(payout.decision, wanted)
            changes: dict[str, Any] = {
                "decision": decision.value,
                "decided_at": now,
                "provider_state": result.state,
                "recipient_action": None,
                "next_check_at": now,
            }
            if decision == Decision.RELEASE:
                changes["failure_code"] = result.failure_code or "provider_failed"
                changes["failure_message"] = (
                    result.failure_message or "The provider did not complete the payment"
                )[:300]
            self._step(
                session,
                payout,
                f"decided_{decision.value}",
                f"{source}: provider reports {result.state} ({result.provider_status})",
                to=S.PROCESSING if payout.status == S.UNKNOWN else None,
                **changes,
            )
        self.settle(payout_id)

    def _not_final(
        self, session: Session, payout: Payout, result: PayoutResult, source: str, now: datetime
    ) -> None:
        if result.state == "pending":
            # A provider may name the recipient's action only once (WeChat Pay's package_info
            # comes with the transfer's creation, not its queries): keep it until the end.
            action = (
                {"recipient_action": dict(result.recipient_action)}
                if result.recipient_action
                else {}
            )
            self._step(
                session,
                payout,
                "provider_pending",
                f"{source}: provider reports pending",
                to=S.PROCESSING if payout.status == S.UNKNOWN else None,
                provider_state="pending",
                next_check_at=now + self._backoff(payout.checks + 1),
                **action,
            )
            return
        # not_found: the provider has no record (yet). Recovery sends again after a while.
        self._step(
            session,
            payout,
            "provider_not_found",
            f"{source}: the provider has no record of the payout",
            to=S.UNKNOWN if payout.status == S.PROCESSING else None,
            provider_state="unknown",
            unknown_since=payout.unknown_since or now,
            next_check_at=now + self._backoff(payout.checks + 1),
        )

    # --- carrying out the decision -------------------------------------------------------------

    def settle(self, payout_id: str) -> None:
        """Carry out the payout's decision, if it has one and nobody else is on it."""
        now = self.clock.now()
        with self.db.transaction() as session:
            payout = self._locked(session, payout_id)
            if payout.decision is None or payout.settle_status == "done":
                return
            if (
                payout.settle_status == "in_flight"
                and payout.next_check_at is not None
                and payout.next_check_at > now
            ):
                return  # another worker holds the lease
            first = payout.settle_attempts == 0
            payout.settle_status = "in_flight"
            payout.settle_attempts += 1
            payout.next_check_at = now + LEASE
            decision = Decision(payout.decision)
        if decision == Decision.CAPTURE:
            self._capture(payout_id, first=first)
        else:
            self._release(payout_id)

    def _settle_later(self, payout_id: str, status: str, cause: str, *, unknown: bool) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            payout = self._locked(session, payout_id)
            self._step(
                session,
                payout,
                f"settle_{status}",
                cause,
                to=S.UNKNOWN if unknown and payout.status == S.PROCESSING else None,
                settle_status=status,
                unknown_since=payout.unknown_since or now,
                next_check_at=now
                + min(timedelta(seconds=2 ** min(payout.settle_attempts, 8)), self.policy.poll_max),
            )

    def _capture(self, payout_id: str, *, first: bool) -> None:
        with self.db.read() as session:
            payout = session.get(Payout, payout_id)
            assert payout is not None
        if not first:
            # An earlier attempt may have reached the core: ask before posting anything.
            try:
                known = self.core.get_transaction_status(payout_id)
            except CoreBankingError as exc:
                self._settle_later(
                    payout_id, "unknown", f"capture status query failed ({exc.code})", unknown=True
                )
                return
            if known.status == "BOOKED":
                self._captured(payout_id, known.core_reference, "capture confirmed by the core")
                return
            if known.status == "PENDING":
                self._settle_later(
                    payout_id, "unknown", "capture pending at the core", unknown=True
                )
                return
            # NOT_FOUND / REJECTED: nothing was booked; posting under the same reference is safe.
        source = self._reveal(payout.source_account_entry_id)
        amount = Money(payout.amount, payout.currency)
        description = (payout.description or f"payout {payout.id} via {payout.provider}")[:140]
        hold: str | None = payout.hold_reference
        for _attempt in range(2):
            try:
                posting = self.core.post_transfer(
                    external_reference=payout_id,
                    debit_account=source,
                    credit_account=payout.clearing_account,
                    amount=amount,
                    description=description,
                    hold_reference=hold,
                )
            except CoreBankingRejected as exc:
                if hold is not None and exc.core_code in HOLD_GONE:
                    # The provider paid, the hold is gone (expired): collect without it.
                    hold = None
                    continue
                self._capture_refused(payout_id, exc)
                return
            except CoreBankingUnavailable as exc:
                self._settle_later(
                    payout_id,
                    "unknown",
                    f"core unavailable for the capture ({exc.code})",
                    unknown=False,
                )
                return
            except CoreBankingError as exc:
                self._settle_later(
                    payout_id, "unknown", f"capture outcome unknown ({exc.code})", unknown=True
                )
                return
            self._captured(
                payout_id,
                posting.core_reference,
                "captured" if hold else "captured without the hold (it had expired)",
            )
            return

    def _captured(self, payout_id: str, core_reference: str | None, cause: str) -> None:
        with self.db.transaction() as session:
            payout = self._locked(session, payout_id)
            if payout.status in TERMINAL:
                return
            self._step(
                session,
                payout,
                "captured",
                cause,
                to=outcome_of(Decision.CAPTURE),
                hold_status="captured",
                settle_status="done",
                core_reference=core_reference,
                failure_code=None,
                failure_message=None,
            )
        log.info("payout_succeeded", payout_id=payout_id)

    def _capture_refused(self, payout_id: str, exc: CoreBankingRejected) -> None:
        """The provider paid but the core refuses the posting: retried with backoff, and an
        operator is told (the bank owes the clearing account until it books)."""
        now = self.clock.now()
        with self.db.transaction() as session:
            payout = self._locked(session, payout_id)
            payout.settle_status = "refused"
            payout.next_check_at = now + self.policy.poll_max
            self._anomaly(session, payout, "capture_refused", {"core_code": exc.core_code})

    def _release(self, payout_id: str) -> None:
        with self.db.read() as session:
            payout = session.get(Payout, payout_id)
            assert payout is not None
        try:
            self.core.release_hold(hold_reference=payout.hold_reference)
        except CoreBankingRejected as exc:
            if exc.core_code not in RELEASED_ALREADY:
                now = self.clock.now()
                with self.db.transaction() as session:
                    locked = self._locked(session, payout_id)
                    locked.settle_status = "refused"
                    locked.next_check_at = now + self.policy.poll_max
                    self._anomaly(session, locked, "release_refused", {"core_code": exc.core_code})
                return
        except CoreBankingError as exc:
            # ReleaseHold is safe to repeat: recovery tries again.
            self._settle_later(
                payout_id, "unknown", f"release not confirmed ({exc.code})", unknown=False
            )
            return
        with self.db.transaction() as session:
            locked = self._locked(session, payout_id)
            if locked.status in TERMINAL:
                return
            self._step(
                session,
                locked,
                "released",
                "hold released",
                to=outcome_of(Decision.RELEASE),
                hold_status="released" if locked.hold_status != "none" else "none",
                settle_status="done",
            )
        log.info("payout_failed", payout_id=payout_id, code=payout.failure_code)

    def release_unconfirmed_hold(self, payout_id: str, cause: str) -> None:
        """Decide release for a payout whose hold is in doubt (never sent to the provider)."""
        with self.db.transaction() as session:
            payout = self._locked(session, payout_id)
            if payout.decision is None:
                self._step(
                    session,
                    payout,
                    "decided_release",
                    cause,
                    decision=decide(None, Decision.RELEASE).value,
                    decided_at=self.clock.now(),
                    failure_code="hold_outcome_unknown",
                    failure_message="The hold could not be confirmed and was released",
                    next_check_at=self.clock.now(),
                )
        self.settle(payout_id)

    # --- status from the provider --------------------------------------------------------------

    def refresh(self, payout_id: str, source: str) -> None:
        """Ask the provider where the payout stands and apply the answer (recovery, hints).

        Raises `ProviderError` when the provider cannot be asked; the caller reschedules.
        """
        with self.db.read() as session:
            payout = session.get(Payout, payout_id)
            assert payout is not None
        if payout.decision is not None or payout.status in TERMINAL:
            self.settle(payout_id)
            return
        adapter = self.providers.get(payout.provider)
        result = adapter.payout_status(
            ProviderRefs(
                idempotency_key=payout.provider_idempotency_key,
                request_id=payout.provider_request_id,
                transaction_reference=payout.provider_reference,
            )
        )
        if result.state == "not_found" and self._send_again(payout):
            return
        self.apply(payout_id, result, source)

    def _send_again(self, payout: Payout) -> bool:
        """A payout the provider has no record of, long enough after it was sent, is sent again
        under the same idempotency key (if the first got through, the provider says so)."""
        sent = payout.provider_sent_at or payout.updated_at
        if sent + self.policy.not_found_after > self.clock.now():
            return False
        if payout.provider_sends >= MAX_SENDS:
            with self.db.transaction() as session:
                locked = self._locked(session, payout.id)
                locked.next_check_at = self.clock.now() + self.policy.poll_max
                self._anomaly(
                    session, locked, "provider_never_received", {"sends": locked.provider_sends}
                )
            return True
        now = self.clock.now()
        with self.db.transaction() as session:
            locked = self._locked(session, payout.id)
            if locked.decision is not None:
                return True
            self._step(
                session,
                locked,
                "provider_resend",
                "the provider has no record: sent again under the same idempotency key",
                provider_state="sending",
                provider_sends=locked.provider_sends + 1,
                provider_sent_at=now,
                next_check_at=now + self.policy.stale,
            )
        self._send(payout.id)
        return True

    # --- reads ---------------------------------------------------------------------------------

    def _own(self, session: Session, partner_id: str, payout_id: str) -> Payout:
        payout = session.scalars(
            select(Payout).where(Payout.id == payout_id, Payout.partner_id == partner_id)
        ).first()
        if payout is None:
            raise NotFound("No such payout", code="payout_not_found")
        return payout

    def get(self, partner: Principal, payout_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            return self.view(session, self._own(session, partner.id, payout_id), history=True)

    def page(
        self,
        partner: Principal,
        *,
        cursor: str | None,
        limit: int,
        status: str | None,
        provider: str | None,
        partner_reference: str | None,
        created_from: datetime | None,
        created_to: datetime | None,
    ) -> dict[str, Any]:
        query = narrowed(
            select(Payout).where(Payout.partner_id == partner.id),
            {
                Payout.status: status,
                Payout.provider: provider,
                Payout.partner_reference: partner_reference,
            },
            Payout.created_at,
            created_from,
            created_to,
        )
        with self.db.read() as session:
            return page(
                session,
                query,
                Payout.id,
                cursor=cursor,
                limit=limit,
                render=lambda payout: self.view(session, payout),
            )

    def resume(self, partner: Principal, payout_id: str) -> dict[str, Any]:
        """Render what an earlier attempt under the same Idempotency-Key created."""
        return self.get(partner, payout_id)

    def find(
        self,
        provider: str,
        *,
        reference: str | None = None,
        idempotency_key: str | None = None,
        transaction_reference: str | None = None,
        request_id: str | None = None,
    ) -> str | None:
        """The payout a provider notification is about, by whatever it names."""
        conditions = []
        if idempotency_key:
            conditions.append(Payout.provider_idempotency_key == idempotency_key)
        if reference:
            conditions.append(Payout.id == reference)
        if transaction_reference:
            conditions.append(Payout.provider_reference == transaction_reference)
        if request_id:
            conditions.append(Payout.provider_request_id == request_id)
        with self.db.read() as session:
            for condition in conditions:
                found = session.scalars(
                    select(Payout.id).where(Payout.provider == provider, condition)
                ).first()
                if found is not None:
                    return str(found)
        return None

    def lookup_name(
        self, partner: Principal, provider_id: str, kind: str, value: str
    ) -> dict[str, Any]:
        """Name enquiry: who holds this wallet (shown to the sender before paying)."""
        if partner.kind != "bank_channel":
            raise PermissionDenied(
                "Name enquiries are for the bank's own channels", code="bank_channel_only"
            )
        if provider_id not in self.providers:
            raise NotFound("No such provider", code="provider_not_found")
        adapter = self.providers.get(provider_id)
        if not adapter.capabilities.lookup_account:
            raise Unprocessable(
                "This provider offers no name enquiry", code="not_supported_by_provider"
            )
        identifier = self.recipient(adapter, kind, value)
        name = adapter.lookup_account(identifier)
        return {
            "provider": provider_id,
            "account": {"type": identifier.type, "masked": mask(identifier.value)},
            "name": {
                "full": name.full_name,
                "given": name.given_name,
                "family": name.family_name,
            },
        }
