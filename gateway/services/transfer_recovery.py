"""Background resolution for transfers: unknown outcomes, stale `processing`, hold expiry,
unconfirmed step-ups, and fee postings.

Every resolution asks the core first (`GetTransactionStatus`) and never posts a transfer or a
refund again. Rows are claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL and a short lease
(`next_check_at`), so several workers share the work without touching the same transfer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select

from adapters.base import CoreBankingError, CoreBankingRejected, OutcomeUnknown, PostingResult
from gateway.domain.money import Money
from gateway.domain.transfers import RefundStatus, TransferStatus
from gateway.observability.logging import get_logger
from gateway.observability.metrics import TRANSFERS_UNKNOWN
from gateway.services.transfers import TransferService
from gateway.store.tables import Refund, Transfer

log = get_logger("gateway.recovery")
S = TransferStatus
LEASE = timedelta(seconds=30)


def _backoff(checks: int) -> timedelta:
    return timedelta(seconds=min(2 ** min(checks, 8), 300))


class TransferRecovery:
    def __init__(self, service: TransferService) -> None:
        self.service = service
        self.db = service.db
        self.clock = service.clock
        self.core = service.core

    # --- claiming ----------------------------------------------------------------------------

    def _claim(self, model: Any, condition: Any, batch: int) -> list[str]:
        now = self.clock.now()
        with self.db.transaction() as session:
            query = select(model).where(condition).order_by(model.id).limit(batch)
            if self.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            rows: Sequence[Transfer | Refund] = session.scalars(query).all()
            for row in rows:
                row.next_check_at = now + LEASE  # the lease: others skip it until then
                row.checks += 1
            return [row.id for row in rows]

    def run(self, batch: int = 50) -> int:
        """One pass: resolve due unknown/stale transfers and refunds. Returns how many."""
        now = self.clock.now()
        stale = now - self.service.policy.stale_processing
        transfers = self._claim(
            Transfer,
            or_(
                (Transfer.status == S.UNKNOWN.value) & (Transfer.next_check_at <= now),
                (Transfer.status == S.PROCESSING.value)
                & (Transfer.updated_at <= stale)
                & ((Transfer.next_check_at.is_(None)) | (Transfer.next_check_at <= now)),
                (Transfer.status == S.AUTHORIZED.value)
                & (Transfer.pending_operation.is_not(None))
                & (Transfer.updated_at <= stale)
                & ((Transfer.next_check_at.is_(None)) | (Transfer.next_check_at <= now)),
            ),
            batch,
        )
        for transfer_id in transfers:
            try:
                self.resolve_transfer(transfer_id)
            except CoreBankingError as exc:
                log.warning("recovery_deferred", transfer_id=transfer_id, code=exc.code)
            except Exception:  # one bad row must not starve the rest of the pass
                log.exception("recovery_failed", transfer_id=transfer_id)
        refunds = self._claim(
            Refund,
            or_(
                (Refund.status == RefundStatus.UNKNOWN.value) & (Refund.next_check_at <= now),
                (Refund.status == RefundStatus.PROCESSING.value)
                & (Refund.updated_at <= stale)
                & ((Refund.next_check_at.is_(None)) | (Refund.next_check_at <= now)),
            ),
            batch,
        )
        for refund_id in refunds:
            try:
                self.resolve_refund(refund_id)
            except CoreBankingError as exc:
                log.warning("recovery_deferred", refund_id=refund_id, code=exc.code)
            except Exception:
                log.exception("recovery_failed", refund_id=refund_id)
        self._report_unknown()
        return len(transfers) + len(refunds)

    def _report_unknown(self) -> None:
        """Refresh the gauge operators alert on: money whose outcome is still in doubt."""
        with self.db.read() as session:
            for kind, model, states in (
                ("transfer", Transfer, [S.UNKNOWN.value, S.PROCESSING.value]),
                ("refund", Refund, [RefundStatus.UNKNOWN.value, RefundStatus.PROCESSING.value]),
            ):
                count = session.scalar(
                    select(func.count()).select_from(model).where(model.status.in_(states))
                )
                TRANSFERS_UNKNOWN.labels(kind).set(count or 0)

    # --- transfers ---------------------------------------------------------------------------

    def _reschedule(self, transfer_id: str) -> None:
        with self.db.transaction() as session:
            transfer = session.get(Transfer, transfer_id, with_for_update=True)
            assert transfer is not None
            transfer.next_check_at = self.clock.now() + _backoff(transfer.checks)

    def resolve_transfer(self, transfer_id: str) -> None:
        with self.db.read() as session:
            transfer = session.get(Transfer, transfer_id)
            assert transfer is not None
        if transfer.status == S.PROCESSING:
            # The process that owned it died between committing and recording the outcome.
            self.service._move_locked(
                transfer_id, S.UNKNOWN, "no outcome recorded", unknown_since=transfer.updated_at
            )
            transfer.unknown_since = transfer.updated_at
        operation = transfer.pending_operation or (
            "hold"
            if transfer.capture_method == "manual" and transfer.status != S.AUTHORIZED
            else "post"
        )
        if operation in ("hold", "release"):
            self._resolve_hold(transfer, operation)
            return
        status = self.core.get_transaction_status(transfer.id)
        window_passed = (
            transfer.unknown_since or transfer.updated_at
        ) + self.service.policy.not_found_after <= self.clock.now()
        capture = operation == "capture"
        if status.status == "BOOKED":
            posting = PostingResult(
                transfer.id,
                status.core_reference or "",
                "BOOKED",
                self.clock.now().date(),
                self.clock.now().date(),
            )
            self.service._booked(transfer_id, posting, "confirmed by GetTransactionStatus")
        elif status.status in ("REJECTED", "REVERSED") or (
            status.status == "NOT_FOUND" and window_passed
        ):
            if capture and transfer.status == S.AUTHORIZED:
                # The capture's process died before the core answered: nothing to move.
                self.service._capture_not_booked(
                    transfer_id, f"capture not booked ({status.status})"
                )
            elif capture:
                self.service._move_locked(
                    transfer_id,
                    S.AUTHORIZED,
                    f"capture not booked ({status.status})",
                    pending_operation=None,
                    captured_amount=0,
                    next_check_at=transfer.hold_expires_at,
                )
            else:
                self.service._move_locked(
                    transfer_id,
                    S.FAILED,
                    f"not booked by the core ({status.status})",
                    failure_code="not_booked",
                    pending_operation=None,
                    next_check_at=None,
                    failure_message="The core has no booking for this transfer",
                )
        else:  # PENDING, or NOT_FOUND inside the safe window
            self._reschedule(transfer_id)

    def _resolve_hold(self, transfer: Transfer, operation: str) -> None:
        """A hold whose placement or release is in doubt: release it (safe to repeat)."""
        try:
            self.core.release_hold(hold_reference=transfer.hold_reference or "")
        except CoreBankingRejected as exc:
            if exc.core_code not in ("HOLD_NOT_FOUND", "HOLD_EXPIRED", "HOLD_RELEASED"):
                raise
        except (OutcomeUnknown, CoreBankingError):
            self._reschedule(transfer.id)
            return
        if operation == "hold":
            self.service._move_locked(
                transfer.id,
                S.FAILED,
                "hold placement unconfirmed; released",
                failure_code="hold_outcome_unknown",
                pending_operation=None,
                next_check_at=None,
                failure_message="The hold could not be confirmed and was released",
            )
        else:
            self.service._move_locked(
                transfer.id, S.VOIDED, "hold released", pending_operation=None, next_check_at=None
            )

    # --- refunds -----------------------------------------------------------------------------

    def resolve_refund(self, refund_id: str) -> None:
        with self.db.read() as session:
            refund = session.get(Refund, refund_id)
            assert refund is not None
        status = self.core.get_transaction_status(refund_id)
        since = refund.unknown_since or refund.updated_at
        window_passed = since + self.service.policy.not_found_after <= self.clock.now()
        if status.status == "BOOKED":
            self.service._refund_settle(refund_id, status.core_reference, None)
        elif status.status in ("REJECTED", "REVERSED") or (
            status.status == "NOT_FOUND" and window_passed
        ):
            self.service._refund_settle(
                refund_id,
                None,
                CoreBankingRejected(
                    "The core has no booking for this refund", core_code="NOT_BOOKED"
                ),
            )
        else:
            with self.db.transaction() as session:
                row = session.get(Refund, refund_id, with_for_update=True)
                assert row is not None
                row.next_check_at = self.clock.now() + _backoff(row.checks)

    # --- expiry ------------------------------------------------------------------------------

    def expire(self, batch: int = 50) -> int:
        """Release holds past their expiry and fail step-ups never confirmed."""
        now = self.clock.now()
        holds = self._claim(
            Transfer,
            (Transfer.status == S.AUTHORIZED.value)
            & (Transfer.pending_operation.is_(None))
            & (Transfer.hold_expires_at <= now),
            batch,
        )
        for transfer_id in holds:
            try:
                self.service._release(transfer_id, "hold expired")
            except CoreBankingError as exc:
                log.warning("hold_release_deferred", transfer_id=transfer_id, code=exc.code)
        step_ups = self._claim(
            Transfer,
            (Transfer.status == S.REQUIRES_ACTION.value) & (Transfer.next_check_at <= now),
            batch,
        )
        for transfer_id in step_ups:
            self.service._move_locked(
                transfer_id,
                S.FAILED,
                "step-up not confirmed in time",
                failure_code="step_up_expired",
                next_check_at=None,
                failure_message="The customer did not confirm the payment",
            )
        return len(holds) + len(step_ups)

    # --- fees --------------------------------------------------------------------------------

    def book_fees(self, batch: int = 50) -> int:
        """Post the fees of succeeded transfers (partner settlement -> fee income)."""
        now = self.clock.now()
        with self.db.transaction() as session:
            query = (
                select(Transfer)
                .where(
                    Transfer.fee_status == "pending",
                    Transfer.status.in_(
                        [
                            S.SUCCEEDED.value,
                            S.PARTIALLY_REFUNDED.value,
                            S.REFUNDED.value,
                            S.REVERSED.value,
                        ]
                    ),
                    or_(Transfer.next_check_at.is_(None), Transfer.next_check_at <= now),
                )
                .order_by(Transfer.id)
                .limit(batch)
            )
            if self.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            due = session.scalars(query).all()
            for transfer in due:
                transfer.next_check_at = now + LEASE
                transfer.checks += 1
            work = [
                (t.id, t.fee_reference, t.fee_amount, t.currency, t.partner_id, t.checks)
                for t in due
            ]
        for transfer_id, reference, fee, currency, partner_id, checks in work:
            self._book_fee(transfer_id, reference or "", Money(fee, currency), partner_id, checks)
        return len(work)

    def _book_fee(
        self, transfer_id: str, reference: str, fee: Money, partner_id: str, checks: int
    ) -> None:
        income = self.service.policy.fee_income_accounts.get(fee.currency)
        if income is None:
            log.error("fee_income_account_missing", currency=fee.currency, transfer_id=transfer_id)
            return
        status = "pending"
        if checks > 1:  # an earlier attempt may have reached the core: ask before posting again
            known = self.core.get_transaction_status(reference)
            if known.status == "BOOKED":
                status = "booked"
        if status == "pending":
            try:
                self.core.post_transfer(
                    external_reference=reference,
                    debit_account=self.service._partner_account(partner_id),
                    credit_account=income,
                    amount=fee,
                    description=f"fee for {transfer_id}",
                )
                status = "booked"
            except OutcomeUnknown:
                status = "pending"
            except CoreBankingRejected as exc:
                log.error("fee_refused", transfer_id=transfer_id, core_code=exc.core_code)
                status = "failed"
            except CoreBankingError:
                status = "pending"
        with self.db.transaction() as session:
            transfer = session.get(Transfer, transfer_id, with_for_update=True)
            assert transfer is not None
            transfer.fee_status = status
            transfer.next_check_at = (
                None
                if status != "pending"
                else self.clock.now() + self.service.policy.not_found_after
            )
