"""SQLAlchemy table definitions (the schema). Alembic migrations in `migrations/` create them.

Money columns are BIGINT minor units plus a 3-letter currency. Every resource that emits events
has a `version`, which is also the `sequence` of its events.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gateway.store.types import JSONType, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
    }


class Partner(Base):
    """A client of the API: wallet, merchant platform, bank channel, the core, or an operator."""

    __tablename__ = "partners"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="active")
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    client_secret_hash: Mapped[str] = mapped_column(String(200))
    # Bumped on suspend, revoke and secret rotation: tokens carrying an older value stop working.
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    settlement_account: Mapped[str | None] = mapped_column(String(34))
    settlement_currency: Mapped[str | None] = mapped_column(String(3))
    rate_limit: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AuditEntry(Base):
    """Who did what to which resource, for operators and auditors. Never holds secrets."""

    __tablename__ = "audit_log"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index(None, "target_type", "target_id"),)


class IdempotencyRecord(Base):
    """One Idempotency-Key of one partner: its request fingerprint, state and stored response."""

    __tablename__ = "idempotency_keys"

    partner_id: Mapped[str] = mapped_column(String(40), ForeignKey("partners.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    operation: Mapped[str] = mapped_column(String(100))
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20))  # in_flight | completed
    locked_until: Mapped[datetime]
    resource_type: Mapped[str | None] = mapped_column(String(40))
    resource_id: Mapped[str | None] = mapped_column(String(40))
    response_status: Mapped[int | None] = mapped_column(Integer)
    # Plain JSON, not JSONB: a replay must return the very bytes the first answer had, and
    # JSONB reorders keys.
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Event(Base):
    """The transactional outbox: one row per state change, written with the change itself."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    partner_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("partners.id"))
    type: Mapped[str] = mapped_column(String(60))
    resource_type: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str] = mapped_column(String(40))
    sequence: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("resource_type", "resource_id", "sequence"),
        Index(None, "partner_id", "id"),
    )


class WebhookEndpoint(Base):
    """A partner's webhook receiver. Its secrets live in the vault, never in this row."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    partner_id: Mapped[str] = mapped_column(String(40), ForeignKey("partners.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(JSONType)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(20), default="healthy")  # healthy | failing
    # Vault entry ids: the current secret and, during a rotation overlap, the previous one.
    secret_ref: Mapped[str] = mapped_column(String(40))
    previous_secret_ref: Mapped[str | None] = mapped_column(String(40))
    previous_secret_expires_at: Mapped[datetime | None]
    secret_rotated_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failure_streak_started_at: Mapped[datetime | None]
    failing_since: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    # Set after a timeout: no delivery to the endpoint is claimed before then.
    paused_until: Mapped[datetime | None]
    # Bumped on every change; the sequence of this endpoint's own events.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class WebhookDelivery(Base):
    """One event owed to one endpoint: the unit the dispatcher claims, retries and replays.

    A claim sets `claim_token` and pushes `next_attempt_at` to the end of the lease, so a
    dispatcher that dies mid-attempt leaves the delivery due again once the lease runs out.
    """

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), ForeignKey("events.id"))
    endpoint_id: Mapped[str] = mapped_column(String(40), ForeignKey("webhook_endpoints.id"))
    partner_id: Mapped[str] = mapped_column(String(40), ForeignKey("partners.id"))
    status: Mapped[str] = mapped_column(String(20))  # pending | delivered | failed | cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Failures since the delivery was (re)queued: indexes the backoff schedule.
    schedule_step: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    retry_until: Mapped[datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(32))
    lease_expires_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "endpoint_id", "id"),
        Index(None, "created_at"),
    )


class WebhookAttempt(Base):
    """One HTTP request of a delivery, kept for operators: what was answered, how fast."""

    __tablename__ = "webhook_attempts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(40), ForeignKey("webhook_deliveries.id"))
    event_id: Mapped[str] = mapped_column(String(40))
    endpoint_id: Mapped[str] = mapped_column(String(40), index=True)
    # Unique per delivery: two dispatchers can never both record the same attempt.
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (UniqueConstraint("delivery_id", "number"),)


class VaultEntry(Base):
    """One encrypted value. AES-GCM with the row id as associated data (see gateway/vault)."""

    __tablename__ = "vault_entries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(40))
    key_version: Mapped[int] = mapped_column(Integer, index=True)
    ciphertext: Mapped[str] = mapped_column(String(2000))
    blind_index: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]

    __table_args__ = (Index(None, "purpose", "blind_index"),)


LIVE_LINK_CONDITION = "status IN ('pending_verification', 'active', 'suspended')"


class Link(Base):
    """A partner's consented link to a customer's bank account (the number lives in the vault)."""

    __tablename__ = "links"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    partner_id: Mapped[str] = mapped_column(String(40), ForeignKey("partners.id"))
    status: Mapped[str] = mapped_column(String(30))
    account_entry_id: Mapped[str] = mapped_column(String(40), ForeignKey("vault_entries.id"))
    # Keyed HMAC of the normalized account number: finds re-links without decrypting.
    account_index: Mapped[str] = mapped_column(String(64))
    account_mask: Mapped[str] = mapped_column(String(12))
    currency: Mapped[str] = mapped_column(String(3))
    wallet_account_reference: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    limit_per_transaction: Mapped[int | None] = mapped_column(BigInteger)
    limit_daily: Mapped[int | None] = mapped_column(BigInteger)
    limit_monthly: Mapped[int | None] = mapped_column(BigInteger)
    consent_expires_at: Mapped[datetime | None]
    status_reason: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    activated_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]

    __table_args__ = (
        Index(None, "partner_id", "id"),
        Index(None, "status", "consent_expires_at"),
        # One live link per partner and account, enforced by the database (no check-then-insert).
        Index(
            "uq_links_live_account",
            "partner_id",
            "account_index",
            unique=True,
            sqlite_where=text(LIVE_LINK_CONDITION),
            postgresql_where=text(LIVE_LINK_CONDITION),
        ),
    )


class OtpChallenge(Base):
    """A one-time password sent to the bank-registered mobile; only its keyed hash is kept."""

    __tablename__ = "otp_challenges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(30))  # link_verification | transfer_step_up
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))  # pending | verified | locked | superseded
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    sent_to_mask: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Transfer(Base):
    """Money moved between a linked account and the partner's settlement account.

    The id is the core ExternalReference of the main posting; holds use `hold_reference`,
    the fee posting `fee_reference`, refunds their own ids.
    """

    __tablename__ = "transfers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    partner_id: Mapped[str] = mapped_column(String(40), ForeignKey("partners.id"))
    link_id: Mapped[str] = mapped_column(String(40), ForeignKey("links.id"))
    direction: Mapped[str] = mapped_column(String(10))  # debit | credit
    capture_method: Mapped[str] = mapped_column(String(10))  # automatic | manual
    status: Mapped[str] = mapped_column(String(30))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    captured_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    # Refunds in flight: reserved so concurrent refunds can never exceed the captured amount.
    refund_reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_reference: Mapped[str | None] = mapped_column(String(40))
    fee_status: Mapped[str | None] = mapped_column(String(20))  # pending | booked | failed
    hold_reference: Mapped[str | None] = mapped_column(String(40))
    hold_expires_at: Mapped[datetime | None]
    pending_operation: Mapped[str | None] = mapped_column(String(20))  # post|hold|capture|release
    partner_reference: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(140))
    core_reference: Mapped[str | None] = mapped_column(String(40))
    failure_code: Mapped[str | None] = mapped_column(String(60))
    failure_message: Mapped[str | None] = mapped_column(String(300))
    next_check_at: Mapped[datetime | None]  # recovery / expiry sweeps
    checks: Mapped[int] = mapped_column(Integer, default=0)
    unknown_since: Mapped[datetime | None]
    settlement_date: Mapped[date | None] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        Index(None, "partner_id", "id"),
        Index(None, "link_id", "created_at"),
        Index(None, "status", "next_check_at"),
    )


class TransferTransition(Base):
    """Every state change of a transfer, with its time and cause (the audit trail of money)."""

    __tablename__ = "transfer_transitions"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    transfer_id: Mapped[str] = mapped_column(String(40), ForeignKey("transfers.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(30))
    to_status: Mapped[str] = mapped_column(String(30))
    cause: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime]


class Refund(Base):
    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    transfer_id: Mapped[str] = mapped_column(String(40), ForeignKey("transfers.id"), index=True)
    partner_id: Mapped[str] = mapped_column(String(40), ForeignKey("partners.id"))
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(140))
    core_reference: Mapped[str | None] = mapped_column(String(40))
    failure_code: Mapped[str | None] = mapped_column(String(60))
    failure_message: Mapped[str | None] = mapped_column(String(300))
    next_check_at: Mapped[datetime | None]
    checks: Mapped[int] = mapped_column(Integer, default=0)
    unknown_since: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index(None, "status", "next_check_at"),)


class FeeScheduleRow(Base):
    """A partner's fee for one direction and currency (fixed + parts-per-million, clamped)."""

    __tablename__ = "fee_schedules"

    partner_id: Mapped[str] = mapped_column(String(40), ForeignKey("partners.id"), primary_key=True)
    direction: Mapped[str] = mapped_column(String(10), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    fixed: Mapped[int] = mapped_column(BigInteger, default=0)
    rate_ppm: Mapped[int] = mapped_column(Integer, default=0)
    minimum: Mapped[int] = mapped_column(BigInteger, default=0)
    maximum: Mapped[int | None] = mapped_column(BigInteger)


class PartnerLimit(Base):
    """A partner-wide cap per currency, on top of each customer's consent limits."""

    __tablename__ = "partner_limits"

    partner_id: Mapped[str] = mapped_column(String(40), ForeignKey("partners.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    per_transaction: Mapped[int | None] = mapped_column(BigInteger)
    daily: Mapped[int | None] = mapped_column(BigInteger)


class RiskEvent(Base):
    """A risk rule hit (velocity, limits); enough of them suspend the link."""

    __tablename__ = "risk_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    partner_id: Mapped[str] = mapped_column(String(40), ForeignKey("partners.id"))
    link_id: Mapped[str | None] = mapped_column(String(40), index=True)
    transfer_id: Mapped[str | None] = mapped_column(String(40))
    rule: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(20))  # rejected | step_up | suspended
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    at: Mapped[datetime]


class Payout(Base):
    """Money from a customer's bank account to a wallet at a provider (a bank channel's request).

    The id is the core ExternalReference of the capture posting and, in the provider's format
    (`provider_idempotency_key`), what the provider deduplicates on. Account number and
    recipient live in the vault. `decision` (capture | release) is taken once, under a row
    lock; `settle_status` follows carrying it out.
    """

    __tablename__ = "payouts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    partner_id: Mapped[str] = mapped_column(String(40), ForeignKey("partners.id"))
    provider: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    source_account_entry_id: Mapped[str] = mapped_column(String(40), ForeignKey("vault_entries.id"))
    source_account_mask: Mapped[str] = mapped_column(String(12))
    recipient_type: Mapped[str] = mapped_column(String(20))
    recipient_entry_id: Mapped[str] = mapped_column(String(40), ForeignKey("vault_entries.id"))
    recipient_mask: Mapped[str] = mapped_column(String(12))
    description: Mapped[str | None] = mapped_column(String(140))
    partner_reference: Mapped[str | None] = mapped_column(String(100))
    clearing_account: Mapped[str] = mapped_column(String(34))
    hold_reference: Mapped[str] = mapped_column(String(40))
    # none | placing | placed | unconfirmed | released | captured
    hold_status: Mapped[str] = mapped_column(String(20))
    hold_expires_at: Mapped[datetime | None]
    # not_sent | sending | pending | succeeded | failed | unknown
    provider_state: Mapped[str] = mapped_column(String(20))
    provider_status: Mapped[str | None] = mapped_column(String(60))  # the provider's own word
    # What the recipient must do at the provider while the payout waits for it (or None).
    recipient_action: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    provider_idempotency_key: Mapped[str] = mapped_column(String(64))
    provider_request_id: Mapped[str | None] = mapped_column(String(100))
    provider_reference: Mapped[str | None] = mapped_column(String(100))
    provider_sends: Mapped[int] = mapped_column(Integer, default=0)
    provider_sent_at: Mapped[datetime | None]
    decision: Mapped[str | None] = mapped_column(String(10))  # capture | release, set once
    decided_at: Mapped[datetime | None]
    # None | in_flight | unknown | done | refused
    settle_status: Mapped[str | None] = mapped_column(String(20))
    settle_attempts: Mapped[int] = mapped_column(Integer, default=0)
    core_reference: Mapped[str | None] = mapped_column(String(40))
    failure_code: Mapped[str | None] = mapped_column(String(60))
    failure_message: Mapped[str | None] = mapped_column(String(300))
    next_check_at: Mapped[datetime | None]  # recovery: poll, resolve, settle (also a lease)
    checks: Mapped[int] = mapped_column(Integer, default=0)
    unknown_since: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        Index(None, "partner_id", "id"),
        Index(None, "status", "next_check_at"),
        UniqueConstraint("provider", "provider_idempotency_key"),
        Index(None, "provider", "provider_reference"),
        Index(None, "provider", "provider_request_id"),
    )


class PayoutTransition(Base):
    """Every step of a payout (status changes, hold, provider answers, the decision) with its
    cause and time: the audit trail of the money."""

    __tablename__ = "payout_transitions"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    payout_id: Mapped[str] = mapped_column(String(40), ForeignKey("payouts.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    step: Mapped[str] = mapped_column(String(40))
    cause: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime]


class ProviderNotification(Base):
    """One inbound provider call (webhook/callback), kept for audit with a bounded body.

    `event_id` is unique per provider, so a redelivered notification is recognised and applied
    once; refused ones (failed verification) have no event id.
    """

    __tablename__ = "provider_notifications"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str | None] = mapped_column(String(100))
    payout_id: Mapped[str | None] = mapped_column(String(40), index=True)
    outcome: Mapped[str] = mapped_column(String(20))  # applied | ignored | rejected | deferred
    reason: Mapped[str | None] = mapped_column(String(300))
    method: Mapped[str] = mapped_column(String(10))
    headers: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    body: Mapped[str] = mapped_column(Text)
    body_bytes: Mapped[int] = mapped_column(Integer)
    body_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(index=True)
    processed_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("provider", "event_id"),)


# --- settlement and reconciliation (docs/settlement.md) -------------------------------------------


class SettlementMessage(Base):
    """One message the core pushed (camt.053/camt.054 or a JSON batch), idempotent per sender.

    `message_id` is the ISO 20022 GrpHdr/MsgId (or the JSON batch id): a resend under the same
    id is answered with `result` and applied again never. While `status` is `receiving` or
    `applying` the row is leased to the process working on it; a lapsed lease lets a resend (or
    the resume worker) take over. The raw bytes are kept gzip-compressed in
    `settlement_message_chunks` for audit.
    """

    __tablename__ = "settlement_messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(40), ForeignKey("partners.id"))
    message_id: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(40))  # camt.053.001.08 | settlement-events
    kind: Mapped[str] = mapped_column(String(20))  # statement | notification | events
    status: Mapped[str] = mapped_column(String(20))  # receiving | applying | applied
    lease_until: Mapped[datetime | None]
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    entry_count: Mapped[int] = mapped_column(Integer, default=0)
    applied_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime | None]  # the sender's CreDtTm
    received_at: Mapped[datetime]
    applied_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (
        UniqueConstraint("sender_id", "message_id"),
        Index(None, "status", "lease_until"),
        Index(None, "received_at"),
    )


class SettlementMessageChunk(Base):
    """A piece of a message's raw bytes, gzip-compressed (chunks concatenate to one gzip)."""

    __tablename__ = "settlement_message_chunks"

    message_pk: Mapped[str] = mapped_column(
        String(40), ForeignKey("settlement_messages.id"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class SettlementEntryRow(Base):
    """One booked entry on a reconciled account, with what it matched and how it counts.

    `entry_key` is the entry's identity (account, side and the core's reference): the same
    booked entry arriving again (camt.054 intraday, then camt.053) is one row. `role` says how
    it was read: primary (the movement's own leg), counterpart (the other leg of a posting
    whose primary leg is elsewhere), reversal, duplicate or unmatched. `counted` entries make
    up the partner's net position for `settlement_date`.
    """

    __tablename__ = "settlement_entries"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    entry_key: Mapped[str] = mapped_column(String(64), unique=True)
    message_pk: Mapped[str] = mapped_column(String(40), ForeignKey("settlement_messages.id"))
    seq: Mapped[int] = mapped_column(Integer)
    confirmed_by: Mapped[str | None] = mapped_column(String(40))  # the statement that listed it
    account: Mapped[str] = mapped_column(String(34))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)  # positive minor units
    side: Mapped[str] = mapped_column(String(6))  # credit | debit
    reversal: Mapped[bool] = mapped_column(Boolean, default=False)
    booking_date: Mapped[date] = mapped_column(Date)
    value_date: Mapped[date | None] = mapped_column(Date)
    reference: Mapped[str | None] = mapped_column(String(64))
    core_reference: Mapped[str | None] = mapped_column(String(64))
    entry_reference: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(20))
    matched_type: Mapped[str | None] = mapped_column(String(20))  # transfer|refund|fee|payout
    matched_id: Mapped[str | None] = mapped_column(String(40))
    partner_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("partners.id"))
    settlement_date: Mapped[date] = mapped_column(Date)
    category: Mapped[str | None] = mapped_column(String(20))
    signed_amount: Mapped[int] = mapped_column(BigInteger)
    counted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("message_pk", "seq"),
        Index(None, "matched_id"),
        Index(None, "partner_id", "settlement_date"),
        Index(None, "settlement_date", "id"),
        Index(None, "core_reference"),
    )


class ReconciliationBreak(Base):
    """A disagreement between the core's books and ours, until an operator resolves it.

    `break_key` makes detection idempotent: one break per entry (and type), one
    `missing_entry` per expected movement, however often the detector runs.
    """

    __tablename__ = "reconciliation_breaks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    break_key: Mapped[str] = mapped_column(String(120), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))  # open | resolved
    partner_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("partners.id"))
    settlement_date: Mapped[date | None] = mapped_column(Date)
    entry_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("settlement_entries.id")
    )
    message_pk: Mapped[str | None] = mapped_column(String(40))
    resource_type: Mapped[str | None] = mapped_column(String(20))
    resource_id: Mapped[str | None] = mapped_column(String(40))
    reference: Mapped[str | None] = mapped_column(String(64))
    core_reference: Mapped[str | None] = mapped_column(String(64))
    account_mask: Mapped[str | None] = mapped_column(String(12))
    expected_amount: Mapped[int | None] = mapped_column(BigInteger)
    expected_currency: Mapped[str | None] = mapped_column(String(3))
    actual_amount: Mapped[int | None] = mapped_column(BigInteger)
    actual_currency: Mapped[str | None] = mapped_column(String(3))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    detected_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolution: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index(None, "status", "type"),
        Index(None, "partner_id", "id"),
        Index(None, "settlement_date", "id"),
        Index(None, "resource_id"),
    )


class Settlement(Base):
    """A partner's net position for one settlement (booking) date, `open` until completed.

    Completed by the end-of-day statement (camt.053) of the partner's settlement account, or
    by an operator; then frozen and announced with `settlement.completed`.
    """

    __tablename__ = "settlements"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    partner_id: Mapped[str] = mapped_column(String(40), ForeignKey("partners.id"))
    settlement_date: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))  # open | completed
    debits: Mapped[int] = mapped_column(BigInteger, default=0)
    credits: Mapped[int] = mapped_column(BigInteger, default=0)
    refunds: Mapped[int] = mapped_column(BigInteger, default=0)
    fees: Mapped[int] = mapped_column(BigInteger, default=0)
    reversals: Mapped[int] = mapped_column(BigInteger, default=0)
    net: Mapped[int] = mapped_column(BigInteger, default=0)
    entry_count: Mapped[int] = mapped_column(Integer, default=0)
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(100))
    statement_message_pk: Mapped[str | None] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("partner_id", "settlement_date"),
        Index(None, "partner_id", "id"),
        Index(None, "settlement_date"),
    )


# Lookups reconciliation makes on tables other features own: matching an entry to a transfer by
# its fee reference or the core's reference, a refund by the core's reference, and finding the
# movements whose entry is overdue.
UNSETTLED_CONDITION = "settlement_date IS NULL"
Index("ix_transfers_fee_reference", Transfer.fee_reference)
Index("ix_transfers_core_reference", Transfer.core_reference)
Index(
    "ix_transfers_unsettled_completed_at",
    Transfer.completed_at,
    sqlite_where=text(UNSETTLED_CONDITION),
    postgresql_where=text(UNSETTLED_CONDITION),
)
Index("ix_transfers_fee_status_completed_at", Transfer.fee_status, Transfer.completed_at)
Index("ix_refunds_core_reference", Refund.core_reference)
Index("ix_refunds_status_updated_at", Refund.status, Refund.updated_at)


__all__ = [
    "AuditEntry",
    "Base",
    "Event",
    "FeeScheduleRow",
    "IdempotencyRecord",
    "Link",
    "OtpChallenge",
    "Partner",
    "PartnerLimit",
    "Payout",
    "PayoutTransition",
    "ProviderNotification",
    "ReconciliationBreak",
    "Refund",
    "RiskEvent",
    "Settlement",
    "SettlementEntryRow",
    "SettlementMessage",
    "SettlementMessageChunk",
    "Transfer",
    "TransferTransition",
    "VaultEntry",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
