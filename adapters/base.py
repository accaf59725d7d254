"""The Protocols the gateway talks to the outside world through, and their error hierarchy.

Services depend on these Protocols only; `adapters/core_banking/soap.py` (zeep), the core
simulator, provider packages and notifiers implement them. Every adapter error is a
`GatewayError`, so an unhandled one still renders as a sensible problem (502/503/504).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from gateway.domain.errors import GatewayError
from gateway.domain.money import Money

# --- errors ---------------------------------------------------------------------------------------


class AdapterError(GatewayError):
    """A dependency failed. `retryable` says whether the same call may simply be repeated."""

    status = 502
    default_code = "upstream_error"
    title = "Upstream error"


class CoreBankingError(AdapterError):
    """A core-banking fault. `core_code` is the core's code (e.g. INSUFFICIENT_FUNDS)."""

    default_code = "core_banking_error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        core_code: str = "UNKNOWN",
        category: str = "SERVER",
        field: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detail, **kwargs)
        self.core_code = core_code
        self.category = category
        self.field = field


class CoreBankingRejected(CoreBankingError):
    """The core refused the request for a business reason (client category): do not retry."""

    status = 422
    default_code = "core_banking_rejected"
    title = "Refused by core banking"


class CoreBankingUnavailable(CoreBankingError):
    """The core could not be reached or is down; nothing was done, the call may be retried."""

    status = 503
    default_code = "core_banking_unavailable"
    title = "Core banking unavailable"
    default_retryable = True


class OutcomeUnknown(CoreBankingError):
    """A posting timed out or its response was lost: it may or may not have been booked.

    Never retry the posting blindly; resolve with `get_transaction_status(reference)`.
    """

    status = 504
    default_code = "core_banking_outcome_unknown"
    title = "Outcome unknown"


class ProviderError(AdapterError):
    """A wallet provider failed; `provider_code` is the provider's own error code."""

    default_code = "provider_error"

    def __init__(
        self, detail: str | None = None, *, provider_code: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(detail, **kwargs)
        self.provider_code = provider_code


class ProviderRejected(ProviderError):
    """The provider refused the request for a reason it stated; nothing was done."""

    status = 422
    default_code = "provider_rejected"
    title = "Refused by the provider"


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or said it is down; nothing was done."""

    status = 503
    default_code = "provider_unavailable"
    title = "Provider unavailable"
    default_retryable = True


class ProviderOutcomeUnknown(ProviderError):
    """A money-moving call may or may not have been carried out (a 500 after the request was
    received, a dropped connection, an unreadable answer).

    Never repeat the call blindly: ask `payout_status(...)` first, or repeat it only under the
    same provider idempotency key.
    """

    status = 504
    default_code = "provider_outcome_unknown"
    title = "Provider outcome unknown"


class ProviderTimeout(ProviderOutcomeUnknown):
    """The provider did not answer in time; the outcome of a money-moving call is unknown."""

    status = 504
    default_code = "provider_timeout"
    title = "Provider timeout"


class UnknownProviderStatus(ProviderError):
    """The provider answered with a status or error our tables do not know.

    Never defaulted to success or failure: the caller treats the outcome as unknown and an
    operator extends the adapter's table (see the provider's `mapping.py`).
    """

    status = 502
    default_code = "provider_status_unknown"
    title = "Unrecognised provider status"


class NotSupportedByProvider(ProviderError):
    status = 422
    default_code = "not_supported_by_provider"
    title = "Not supported by this provider"


class WebhookVerificationError(AdapterError):
    """An inbound notification failed verification; `reason` says which check failed."""

    status = 401
    default_code = "webhook_verification_failed"
    title = "Webhook verification failed"

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or f"Notification rejected: {reason}")
        self.reason = reason


class NotifierError(AdapterError):
    default_code = "notifier_error"
    title = "Notification could not be sent"


# --- core banking ---------------------------------------------------------------------------------

AccountStatus = Literal["ACTIVE", "DORMANT", "BLOCKED", "CLOSED"]
TransactionState = Literal["BOOKED", "PENDING", "REVERSED", "REJECTED", "NOT_FOUND"]


@dataclass(frozen=True)
class CoreAccount:
    account_number: str
    holder_name: str
    currency: str
    status: AccountStatus
    debit_allowed: bool
    credit_allowed: bool
    # The holder's mobile number registered at the bank: used only to send OTPs, never exposed.
    registered_mobile: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class CoreBalance:
    account_number: str
    available: Money
    ledger: Money
    as_of: datetime


@dataclass(frozen=True)
class HoldResult:
    hold_reference: str
    status: Literal["PLACED", "RELEASED", "CAPTURED", "EXPIRED"]
    amount: Money
    expires_at: datetime | None
    replayed: bool = False


@dataclass(frozen=True)
class PostingResult:
    external_reference: str
    core_reference: str
    status: TransactionState
    booking_date: date
    value_date: date
    replayed: bool = False


@dataclass(frozen=True)
class TransactionStatus:
    external_reference: str
    status: TransactionState
    core_reference: str | None = None
    amount: Money | None = None
    booked_at: datetime | None = None
    # For REJECTED: the core's code of the refusal (e.g. INSUFFICIENT_FUNDS).
    rejection_code: str | None = None


@dataclass(frozen=True)
class StatementEntry:
    """One booked entry, shaped like an ISO 20022 camt.053 `Ntry`."""

    entry_reference: str
    amount: Money
    credit_debit: Literal["CRDT", "DBIT"]
    status: Literal["BOOK", "PDNG"]
    booking_date: date
    value_date: date
    external_reference: str | None
    core_reference: str
    description: str = ""


@dataclass(frozen=True)
class StatementPage:
    account_number: str
    entries: list[StatementEntry]
    next_page_token: str | None


@runtime_checkable
class CoreBanking(Protocol):
    """The bank's core system. References are ours (≤ 35 chars); postings are idempotent by them
    in a faithful core, but callers must not rely on that: after `OutcomeUnknown` they ask
    `get_transaction_status` before anything else.
    """

    def get_account(self, account_number: str) -> CoreAccount: ...

    def get_balance(self, account_number: str) -> CoreBalance: ...

    def place_hold(
        self,
        *,
        hold_reference: str,
        account_number: str,
        amount: Money,
        expires_at: datetime | None = None,
        description: str = "",
    ) -> HoldResult: ...

    def release_hold(self, *, hold_reference: str) -> HoldResult: ...

    def post_transfer(
        self,
        *,
        external_reference: str,
        debit_account: str,
        credit_account: str,
        amount: Money,
        description: str = "",
        hold_reference: str | None = None,
    ) -> PostingResult:
        """Book a transfer; with `hold_reference`, capture (part of) that hold and release the
        rest. Raises `OutcomeUnknown` on timeout or lost response."""
        ...

    def reverse_transfer(
        self, *, external_reference: str, original_reference: str, reason: str = ""
    ) -> PostingResult: ...

    def get_transaction_status(self, external_reference: str) -> TransactionStatus: ...

    def get_statement(
        self,
        *,
        account_number: str,
        from_date: date,
        to_date: date,
        page_token: str | None = None,
        page_size: int = 100,
    ) -> StatementPage: ...

    def ping(self) -> None: ...


# --- notifications --------------------------------------------------------------------------------


@runtime_checkable
class Notifier(Protocol):
    """Sends short messages (OTPs) to a customer's registered mobile number."""

    def send_sms(self, *, to: str, text: str, reference: str) -> str:
        """Send `text` to `to`; returns the gateway's message id. Raises `NotifierError`."""
        ...


# --- wallet providers -----------------------------------------------------------------------------

# Our view of a provider-side money movement. `not_found`: the provider has no record of the
# request (it never arrived, or the provider has not processed it yet).
PayoutState = Literal["pending", "succeeded", "failed", "not_found"]


@dataclass(frozen=True)
class ProviderCapabilities:
    """What an adapter can do; a flow it lacks raises `NotSupportedByProvider`."""

    payout: bool = False
    payout_status: bool = False
    refund: bool = False
    lookup_account: bool = False
    # True when inbound notifications carry a verifiable signature; False means a verified
    # notification is still only a hint and the status is fetched from the provider.
    signs_webhooks: bool = False
    # Recipient identifier types the provider accepts, e.g. ("msisdn", "walletid").
    identifier_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccountIdentifier:
    """A wallet account at the provider: `msisdn` (+254712345678), `walletid`, `openid`,
    `alipay_user_id`...; `name` is the holder's real name where the provider checks it (Alipay
    logon ids, large WeChat Pay transfers)."""

    type: str
    value: str = field(repr=False)
    name: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ProviderRefs:
    """What is known of a request at the provider, so a status query can find it."""

    idempotency_key: str
    request_id: str | None = None  # the provider's handle on an asynchronous request
    transaction_reference: str | None = None  # the provider's id of the money movement


@dataclass(frozen=True)
class PayoutRequest:
    reference: str  # our payout id
    idempotency_key: str  # what the provider deduplicates on (`WalletProvider.idempotency_key`)
    amount: Money
    recipient: AccountIdentifier
    description: str = ""
    callback_url: str | None = None


@dataclass(frozen=True)
class PayoutResult:
    """The provider's answer, already mapped through the adapter's exhaustive status table."""

    state: PayoutState
    provider_status: str  # the provider's own status word, kept for the audit trail
    request_id: str | None = None
    transaction_reference: str | None = None
    failure_code: str | None = None  # our partner-facing code, for `failed`
    failure_message: str | None = None
    provider_code: str | None = None  # the provider's error code, for `failed`
    amount: Money | None = None  # what the provider says it moved: checked against ours
    echoed_reference: str | None = None  # our reference as the provider echoes it back
    # What the recipient must do at the provider before the money moves (e.g. WeChat Pay's
    # user confirmation: the `package_info` the channel hands to the user's WeChat client).
    recipient_action: Mapping[str, str] | None = None

    @property
    def final(self) -> bool:
        return self.state in ("succeeded", "failed")


@dataclass(frozen=True)
class AccountName:
    """A name enquiry's answer: who holds the wallet (shown to the sender before paying)."""

    full_name: str
    given_name: str | None = None
    family_name: str | None = None


@dataclass(frozen=True)
class ProviderNotification:
    """A verified, parsed inbound notification.

    `event_id` deduplicates (unique per provider). The payout is found by whichever of
    `reference` (ours, echoed), `idempotency_key` or `refs` the provider sent. `result` is the
    notification's claim; unless `authoritative`, it is only a hint and the status is fetched
    from the provider before anything is applied.
    """

    event_id: str
    # "payout" is applied to a payout; anything else ("refund", "payment", "other") is
    # recorded and acknowledged only (the gateway does not initiate refunds or payments).
    kind: str
    reference: str | None = None
    idempotency_key: str | None = None
    request_id: str | None = None
    transaction_reference: str | None = None
    result: PayoutResult | None = None
    authoritative: bool = False


@dataclass(frozen=True)
class WebhookReply:
    """The answer a provider expects to its notification (e.g. Alipay's plain-text `success`)."""

    status: int
    body: bytes = b""
    content_type: str | None = None


@runtime_checkable
class RepliesToWebhooks(Protocol):
    """An adapter whose provider expects a particular answer to its notifications.

    Adapters without it get the gateway's default: 204 on success, a problem+json on failure.
    """

    def webhook_reply(self, *, accepted: bool, status: int, message: str) -> WebhookReply | None:
        """The answer for a notification that was taken (`accepted`, `status` 2xx) or refused
        (`status` 4xx/5xx, `message` partner-safe); None keeps the gateway's default."""
        ...


@runtime_checkable
class ChecksPayouts(Protocol):
    """An adapter that can tell before any money is held that the provider would refuse a payout
    (a required recipient name missing, an amount outside its limits)."""

    def check_payout(self, amount: Money, recipient: AccountIdentifier) -> None:
        """Raise `ProviderRejected` (with a partner-facing `code`) if the payout cannot go."""
        ...


@runtime_checkable
class WalletProvider(Protocol):
    """A third-party wallet provider (GSMA Mobile Money API, WeChat Pay, Alipay, ...).

    Adapters map every provider status through an exhaustive table (unknown raises
    `UnknownProviderStatus`) and every failure to the error hierarchy above:
    `ProviderRejected` (nothing done), `ProviderUnavailable` (nothing done, try later),
    `ProviderOutcomeUnknown`/`ProviderTimeout` (maybe done: query, never blindly repeat).
    """

    id: str
    capabilities: ProviderCapabilities

    def idempotency_key(self, reference: str) -> str:
        """The provider-format idempotency key for our reference (stable: same in, same out)."""
        ...

    def payout(self, request: PayoutRequest) -> PayoutResult:
        """Send money to a wallet. Repeating it with the same idempotency key is safe."""
        ...

    def payout_status(self, refs: ProviderRefs) -> PayoutResult:
        """Where the payout identified by `refs` stands at the provider."""
        ...

    def refund(self, refs: ProviderRefs, amount: Money, *, reference: str) -> PayoutResult:
        """Reverse (part of) a completed payout; `NotSupportedByProvider` where unsupported."""
        ...

    def lookup_account(self, identifier: AccountIdentifier) -> AccountName:
        """Name enquiry; `NotSupportedByProvider` where unsupported, `ProviderRejected` with
        code `recipient_not_found` when there is no such account."""
        ...

    def verify_and_parse_webhook(
        self, method: str, headers: dict[str, str], body: bytes
    ) -> ProviderNotification:
        """Check an inbound call (raises `WebhookVerificationError(reason)`), then parse it."""
        ...
