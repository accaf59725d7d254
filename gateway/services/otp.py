"""One-time passwords to the bank-registered mobile: issue, deliver, verify, lock.

Codes are 6 random digits (`secrets`), kept only as a keyed HMAC bound to the challenge id,
valid for `ttl` and `max_attempts` tries. A wrong try is committed before the error is
returned, so attempts cannot be replayed away. Used for link verification and transfer step-up.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adapters.base import Notifier, NotifierError
from gateway.domain.clock import Clock
from gateway.domain.ids import new_id
from gateway.observability.logging import get_logger, mask
from gateway.store.tables import OtpChallenge
from gateway.vault import Vault

log = get_logger("gateway.otp")


@dataclass(frozen=True)
class OtpPolicy:
    ttl: timedelta
    max_attempts: int
    max_sends: int


@dataclass(frozen=True)
class Verification:
    outcome: Literal["verified", "invalid", "locked", "expired", "missing"]
    attempts_remaining: int = 0


class OtpService:
    def __init__(self, vault: Vault, clock: Clock, notifier: Notifier, policy: OtpPolicy) -> None:
        self.vault = vault
        self.clock = clock
        self.notifier = notifier
        self.policy = policy

    def _hash(self, challenge_id: str, code: str) -> str:
        return self.vault.blind_index(f"otp:{challenge_id}", code)

    def sends_so_far(self, session: Session, purpose: str, subject_id: str) -> int:
        return int(
            session.scalar(
                select(func.count())
                .select_from(OtpChallenge)
                .where(OtpChallenge.purpose == purpose, OtpChallenge.subject_id == subject_id)
            )
            or 0
        )

    def issue(
        self, session: Session, *, purpose: str, subject_id: str, mobile: str
    ) -> tuple[OtpChallenge, str]:
        """A new challenge in the caller's transaction (older pending ones are superseded)."""
        now = self.clock.now()
        for previous in session.scalars(
            select(OtpChallenge).where(
                OtpChallenge.purpose == purpose,
                OtpChallenge.subject_id == subject_id,
                OtpChallenge.status == "pending",
            )
        ):
            previous.status = "superseded"
        code = f"{secrets.randbelow(10**6):06d}"
        challenge = OtpChallenge(
            id=new_id("otp"),
            purpose=purpose,
            subject_id=subject_id,
            status="pending",
            attempts=0,
            max_attempts=self.policy.max_attempts,
            sent_to_mask=mask(mobile),
            created_at=now,
            expires_at=now + self.policy.ttl,
        )
        challenge.code_hash = self._hash(challenge.id, code)
        session.add(challenge)
        return challenge, code

    def deliver(self, *, mobile: str, text: str, reference: str) -> bool:
        """Send the message; False (logged, never raised) if the SMS gateway failed."""
        try:
            self.notifier.send_sms(to=mobile, text=text, reference=reference)
        except NotifierError:
            log.warning("otp_delivery_failed", sent_to=mask(mobile), reference=reference)
            return False
        log.info(f"OTP sent to {mask(mobile)}", reference=reference)
        return True

    def current(self, session: Session, purpose: str, subject_id: str) -> OtpChallenge | None:
        return session.scalars(
            select(OtpChallenge)
            .where(OtpChallenge.purpose == purpose, OtpChallenge.subject_id == subject_id)
            .order_by(OtpChallenge.created_at.desc(), OtpChallenge.id.desc())
            .limit(1)
        ).first()

    def verify(self, session: Session, *, purpose: str, subject_id: str, code: str) -> Verification:
        """Check a code against the newest pending challenge; counts the attempt."""
        challenge = session.scalars(
            select(OtpChallenge)
            .where(
                OtpChallenge.purpose == purpose,
                OtpChallenge.subject_id == subject_id,
                OtpChallenge.status == "pending",
            )
            .order_by(OtpChallenge.created_at.desc(), OtpChallenge.id.desc())
            .limit(1)
            .with_for_update()
        ).first()
        if challenge is None:
            return Verification("missing")
        if challenge.expires_at <= self.clock.now():
            return Verification("expired")
        challenge.attempts += 1
        if hmac.compare_digest(challenge.code_hash, self._hash(challenge.id, code)):
            challenge.status = "verified"
            return Verification("verified")
        remaining = challenge.max_attempts - challenge.attempts
        if remaining <= 0:
            challenge.status = "locked"
            return Verification("locked")
        return Verification("invalid", remaining)

    @staticmethod
    def attempts_remaining(challenge: OtpChallenge, now: datetime) -> int:
        if challenge.status != "pending" or challenge.expires_at <= now:
            return 0
        return challenge.max_attempts - challenge.attempts
