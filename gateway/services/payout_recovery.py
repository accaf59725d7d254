"""Background resolution of payouts: lost provider answers, late or lost callbacks, captures
and releases in doubt, holds whose placement is in doubt.

Every non-final payout carries `next_check_at`; a due one is claimed with a lease
(`FOR UPDATE SKIP LOCKED` on PostgreSQL), so several workers share the work without looking at
the same payout, and then:

* a decision taken but not carried out (or carried out without an answer) -> `settle`: a
  capture asks `GetTransactionStatus` before anything is posted; a release is repeated;
* a hold whose placement was never confirmed -> release it (safe to repeat) and fail;
* otherwise the provider is asked (`payout_status`); a payout it has no record of is sent again
  under the same idempotency key once `payout_not_found_after_seconds` have passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func, select

from adapters.base import CoreBankingError, ProviderError
from gateway.domain.payouts import PayoutStatus
from gateway.observability.logging import get_logger
from gateway.observability.metrics import PAYOUTS_OPEN
from gateway.services.payouts import LEASE, PayoutService
from gateway.store.tables import Payout

log = get_logger("gateway.payout_recovery")
S = PayoutStatus
OPEN = (S.CREATED.value, S.PROCESSING.value, S.UNKNOWN.value)


class PayoutRecovery:
    def __init__(self, service: PayoutService) -> None:
        self.service = service
        self.db = service.db
        self.clock = service.clock

    def _claim(self, batch: int) -> list[str]:
        now = self.clock.now()
        with self.db.transaction() as session:
            query = (
                select(Payout)
                .where(Payout.status.in_(OPEN), Payout.next_check_at <= now)
                .order_by(Payout.next_check_at, Payout.id)
                .limit(batch)
            )
            if self.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            rows: Sequence[Payout] = session.scalars(query).all()
            for row in rows:
                row.next_check_at = now + LEASE  # the lease: others skip it until then
                row.checks += 1
            return [row.id for row in rows]

    def run(self, batch: int = 50) -> int:
        """One pass over due payouts; returns how many were looked at."""
        self._count_open()
        claimed = self._claim(batch)
        for payout_id in claimed:
            try:
                self.resolve(payout_id)
            except (ProviderError, CoreBankingError) as exc:
                log.warning("payout_recovery_deferred", payout_id=payout_id, code=exc.code)
                self._reschedule(payout_id)
            except LookupError:  # its provider is no longer enabled: an operator must act
                log.error("payout_provider_not_enabled", payout_id=payout_id)
                self._reschedule(payout_id)
        return len(claimed)

    def _count_open(self) -> None:
        with self.db.read() as session:
            counts = dict(
                session.execute(
                    select(Payout.status, func.count())
                    .where(Payout.status.in_(OPEN))
                    .group_by(Payout.status)
                ).all()
            )
        for status in OPEN:
            PAYOUTS_OPEN.labels(status).set(counts.get(status, 0))

    def _reschedule(self, payout_id: str) -> None:
        with self.db.transaction() as session:
            payout = session.get(Payout, payout_id, with_for_update=True)
            assert payout is not None
            if payout.status in OPEN:
                delay = min(
                    timedelta(seconds=2 ** min(payout.checks, 10)), self.service.policy.poll_max
                )
                payout.next_check_at = self.clock.now() + delay

    def resolve(self, payout_id: str) -> None:
        with self.db.read() as session:
            payout = session.get(Payout, payout_id)
            assert payout is not None
        if payout.decision is not None:
            if payout.settle_status == "in_flight":
                # The previous holder's lease ran out: the claim above made it ours.
                self._expire_lease(payout_id)
            self.service.settle(payout_id)
        elif payout.hold_status in ("placing", "unconfirmed"):
            self.service.release_unconfirmed_hold(
                payout_id, "the hold was never confirmed: released, nothing was sent"
            )
        else:
            self.service.refresh(payout_id, "status query")

    def _expire_lease(self, payout_id: str) -> None:
        with self.db.transaction() as session:
            payout = session.get(Payout, payout_id, with_for_update=True)
            assert payout is not None
            if payout.settle_status == "in_flight":
                payout.settle_status = "unknown"
                payout.next_check_at = self.clock.now()
