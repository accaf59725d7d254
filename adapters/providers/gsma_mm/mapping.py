"""GSMA Mobile Money API: request bodies, answers -> our results, and the status and error tables.

Sources of the tables (GSMA Mobile Money API v1.1/v1.2):

* `requestStateObject.status` = pending | completed | failed, with `serverCorrelationId`,
  `objectReference`, `notificationMethod` and an `error` object; the `errorObject` with its
  `errorCategory` enumeration (businessRule, validation, authorisation, identification,
  internal, serviceUnavailable) and harmonised `errorCode` enumeration: the v1.2 OpenAPI
  definitions published by GSMA (Supporting API and Transactions API, "Mobile Money API v1.2",
  developer.mobilemoneyapi.io, sandbox.mobilemoneyapi.io/simulator/v1.2), and the API Service
  Definition ("Supporting Objects", "Enumerations") of the same version.
* HTTP status per category, as the definitions declare them for every operation: 400
  businessRule/validation, 401 authorisation, 404 identification, 500 internal, 503
  serviceUnavailable.
* `transactionStatus` is a free string in the specification ("the status of the transaction as
  stored by the API provider"); the values below are the ones the GSMA reference simulator and
  the specification's examples use. Any other value raises `UnknownProviderStatus`: a provider
  with its own vocabulary gets its words added here, never a default.
* `X-CorrelationID` must be a UUID (v1.2 parameter definition); it is what the provider
  deduplicates a POST on (Mobile Money API Guidelines, "Idempotency"), and what
  `GET /responses/{clientCorrelationId}` finds a lost answer by.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from adapters.base import (
    AccountName,
    PayoutRequest,
    PayoutResult,
    PayoutState,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    UnknownProviderStatus,
)
from gateway.domain.clock import rfc3339
from gateway.domain.money import Money, MoneyError

# --- identifiers ---------------------------------------------------------------------------------

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_NAMESPACE = uuid.UUID("6f1d7c3e-8a52-4d1b-9c0e-2b7a5e4f9d10")


def correlation_id(reference: str) -> str:
    """The X-CorrelationID (a UUID) for one of our references.

    Our ids are ULIDs behind a prefix (`po_01j9...`): their 128 bits *are* a UUID, so the
    correlation id is the payout id in another spelling (and stays the same on every retry).
    Anything else gets a name-based UUID (stable too).
    """
    _prefix, _sep, body = reference.partition("_")
    if len(body) == 26 and all(ch in _CROCKFORD for ch in body):
        value = 0
        for ch in body:
            value = value * 32 + _CROCKFORD.index(ch)
        if value < 1 << 128:
            return str(uuid.UUID(int=value))
    return str(uuid.uuid5(_NAMESPACE, reference))


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return len(value) == 36


# --- status tables -------------------------------------------------------------------------------

RequestState = Literal["pending", "completed", "failed"]
# requestStateObject.status -> what it means for the request. `completed` means the resource
# (the transaction) was created: its own transactionStatus decides the payout.
REQUEST_STATES: dict[str, RequestState] = {
    "pending": "pending",
    "completed": "completed",
    "failed": "failed",
}

# transactionStatus -> our payout state (exhaustive; unknown raises).
TRANSACTION_STATUSES: dict[str, PayoutState] = {
    "pending": "pending",
    "completed": "succeeded",
    "failed": "failed",
    "rejected": "failed",
    "reversed": "failed",  # paid, then taken back by the provider: the wallet did not keep it
}

# --- error table ---------------------------------------------------------------------------------

Outcome = Literal["rejected", "unavailable", "unknown", "duplicate", "not_found"]


@dataclass(frozen=True)
class ErrorRule:
    """What a GSMA error means for us: `outcome` decides the exception (or flow), `code` is the
    partner-facing failure code, `message` a partner-safe explanation."""

    outcome: Outcome
    code: str
    message: str


CATEGORY_STATUS = {
    "businessRule": 400,
    "validation": 400,
    "authorisation": 401,
    "identification": 404,
    "internal": 500,
    "serviceUnavailable": 503,
}

_DECLINED = ErrorRule("rejected", "provider_declined", "The provider declined the payment")
_INVALID = ErrorRule(
    "rejected", "provider_validation_failed", "The provider refused the request as invalid"
)
_LIMIT = ErrorRule(
    "rejected", "recipient_limit_exceeded", "The payment exceeds the recipient's wallet limits"
)
_NOT_PERMITTED = ErrorRule(
    "rejected", "recipient_not_permitted", "The provider does not allow payments to this wallet"
)
_AUTH = ErrorRule(
    "rejected",
    "provider_authentication_failed",
    "The provider did not accept the bank's credentials",
)

# Category defaults: a code missing from ERRORS is judged by its category, which is what the
# specification defines the HTTP semantics by. An unknown category raises.
CATEGORY_DEFAULTS: dict[str, ErrorRule] = {
    "businessRule": ErrorRule("rejected", "provider_rejected", "The provider refused the payment"),
    "validation": _INVALID,
    "authorisation": _AUTH,
    "identification": ErrorRule(
        "not_found", "recipient_not_found", "The provider has no such wallet account"
    ),
    "internal": ErrorRule(
        "unknown", "provider_error", "The provider failed while processing the request"
    ),
    "serviceUnavailable": ErrorRule(
        "unavailable", "provider_unavailable", "The provider is unavailable"
    ),
}

ERRORS: dict[tuple[str, str], ErrorRule] = {
    # businessRule
    ("businessRule", "insufficientFunds"): ErrorRule(
        "rejected",
        "provider_insufficient_float",
        "The bank's account at the provider cannot cover the payment",
    ),
    ("businessRule", "dailyVolumeLimitExceeded"): _LIMIT,
    ("businessRule", "dailyValueLimitExceeded"): _LIMIT,
    ("businessRule", "weeklyVolumeLimitExceeded"): _LIMIT,
    ("businessRule", "weeklyValueLimitExceeded"): _LIMIT,
    ("businessRule", "monthlyVolumeLimitExceeded"): _LIMIT,
    ("businessRule", "monthlyValueLimitExceeded"): _LIMIT,
    ("businessRule", "accountMaxTotalVolumeExceeded"): _LIMIT,
    ("businessRule", "accountMaxTotalValueExceeded"): _LIMIT,
    ("businessRule", "maxBalanceExceeded"): ErrorRule(
        "rejected",
        "recipient_balance_limit_exceeded",
        "The payment would take the wallet above its balance limit",
    ),
    ("businessRule", "lessThanTransactionMinValue"): ErrorRule(
        "rejected", "amount_below_minimum", "The amount is below the provider's minimum"
    ),
    ("businessRule", "greaterThanTransactionMaxValue"): ErrorRule(
        "rejected", "amount_above_maximum", "The amount is above the provider's maximum"
    ),
    ("businessRule", "samePartiesError"): _INVALID,
    ("businessRule", "duplicateRequest"): ErrorRule(
        "duplicate", "duplicate_request", "The provider already has this request"
    ),
    ("businessRule", "incorrectState"): _DECLINED,
    ("businessRule", "rateLimitError"): ErrorRule(
        "unavailable", "provider_rate_limited", "The provider is limiting the bank's requests"
    ),
    ("businessRule", "transactionTypeError"): ErrorRule(
        "rejected", "not_supported_by_provider", "The provider does not offer disbursements"
    ),
    ("businessRule", "countryofOriginNotPermitted"): _NOT_PERMITTED,
    ("businessRule", "nationalityNotPermitted"): _NOT_PERMITTED,
    ("businessRule", "idDocumentNotSupported"): _NOT_PERMITTED,
    ("businessRule", "issuingCountryNotSupported"): _NOT_PERMITTED,
    # validation
    ("validation", "currencyNotSupported"): ErrorRule(
        "rejected", "currency_not_supported", "The provider does not support the currency"
    ),
    ("validation", "identifierError"): ErrorRule(
        "rejected", "recipient_invalid", "The recipient identifier is not valid"
    ),
    ("validation", "formatError"): _INVALID,
    ("validation", "lengthError"): _INVALID,
    ("validation", "negativeValue"): _INVALID,
    ("validation", "mandatoryValueNotSupplied"): _INVALID,
    # authorisation
    ("authorisation", "requestDeclined"): _DECLINED,
    ("authorisation", "servicingPartyAuthorisationError"): _DECLINED,
    ("authorisation", "requestingPartyAuthorisationError"): _DECLINED,
    ("authorisation", "clientAuthorisationError"): _AUTH,
    ("authorisation", "noMandateAuthority"): _DECLINED,
}


def error_rule(category: object, code: object) -> ErrorRule:
    """The rule for an errorObject; an unknown category raises `UnknownProviderStatus`."""
    if not isinstance(category, str) or category not in CATEGORY_DEFAULTS:
        raise UnknownProviderStatus(
            "The provider answered with an unknown error category",
            provider_code=f"{category}.{code}",
        )
    return ERRORS.get((category, str(code)), CATEGORY_DEFAULTS[category])


def provider_code(error: dict[str, Any]) -> str:
    return f"{error.get('errorCategory')}.{error.get('errorCode')}"


def error_for(rule: ErrorRule, error: dict[str, Any]) -> ProviderError:
    """The exception for a refusal the caller cannot turn into a payout result."""
    code = provider_code(error)
    if rule.outcome == "unavailable":
        return ProviderUnavailable(rule.message, code=rule.code, provider_code=code)
    if rule.outcome == "unknown":
        return ProviderOutcomeUnknown(rule.message, code=rule.code, provider_code=code)
    return ProviderRejected(rule.message, code=rule.code, provider_code=code)


# --- requests ------------------------------------------------------------------------------------


def disbursement_body(
    request: PayoutRequest,
    *,
    debit_party: tuple[str, str],
    requesting_organisation_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The body of `POST /transactions/type/disbursement` (requestTransactionType)."""
    body: dict[str, Any] = {
        "amount": request.amount.value,
        "currency": request.amount.currency,
        "creditParty": [{"key": request.recipient.type, "value": request.recipient.value}],
        "debitParty": [{"key": debit_party[0], "value": debit_party[1]}],
        "requestingOrganisationTransactionReference": request.reference,
        "requestDate": rfc3339(now.replace(microsecond=0)),
    }
    if request.description:
        body["descriptionText"] = request.description[:160]
    if requesting_organisation_id:
        body["requestingOrganisation"] = {
            "requestingOrganisationIdentifierType": "organisationid",
            "requestingOrganisationIdentifier": requesting_organisation_id,
        }
    return body


# --- answers -------------------------------------------------------------------------------------


def _amount(obj: dict[str, Any]) -> Money | None:
    value, currency = obj.get("amount"), obj.get("currency")
    if not isinstance(value, str) or not isinstance(currency, str):
        return None
    try:
        # The API's amounts may drop trailing zeros ("250.5"); more digits than the currency
        # has are refused, never rounded.
        return Money.from_decimal(Decimal(value), currency)
    except (MoneyError, InvalidOperation):
        # More decimals than the currency has ("100.5" for KES is fine; "1.234" is not).
        raise UnknownProviderStatus(
            "The provider reported an amount that is not valid for its currency",
            provider_code="amount",
        ) from None


def transaction_result(obj: dict[str, Any], *, request_id: str | None = None) -> PayoutResult:
    """A transaction object (201 answer, GET /transactions/{ref}, success callback)."""
    raw = obj.get("transactionStatus")
    if not isinstance(raw, str):
        raise UnknownProviderStatus(
            "The provider's transaction has no status", provider_code="transactionStatus"
        )
    state = TRANSACTION_STATUSES.get(raw.strip().lower())
    if state is None:
        raise UnknownProviderStatus(
            "The provider reported an unknown transaction status", provider_code=raw[:60]
        )
    reference = obj.get("transactionReference")
    failure_code = failure_message = None
    if state == "failed":
        failure_code = "provider_reversed" if raw.lower() == "reversed" else "provider_failed"
        failure_message = (
            "The provider reversed the payment"
            if failure_code == "provider_reversed"
            else "The provider could not complete the payment"
        )
    echoed = obj.get("requestingOrganisationTransactionReference")
    return PayoutResult(
        state=state,
        provider_status=raw[:60],
        request_id=request_id,
        transaction_reference=str(reference)[:100] if reference else None,
        failure_code=failure_code,
        failure_message=failure_message,
        amount=_amount(obj),
        echoed_reference=str(echoed)[:100] if echoed else None,
    )


def failed_result(error: dict[str, Any], *, request_id: str | None = None) -> PayoutResult:
    """An errorObject that ends a payout (failure callback, failed request state)."""
    rule = error_rule(error.get("errorCategory"), error.get("errorCode"))
    if rule.outcome in ("unavailable", "unknown", "duplicate"):
        # "failed" with a transient reason still means the provider failed the request: it is
        # final for this request (the provider will not carry it out later).
        code, message = "provider_failed", "The provider could not complete the payment"
    else:
        code, message = rule.code, rule.message
    return PayoutResult(
        state="failed",
        provider_status="failed",
        request_id=request_id,
        failure_code=code,
        failure_message=message,
        provider_code=provider_code(error),
    )


@dataclass(frozen=True)
class RequestStateView:
    state: RequestState
    server_correlation_id: str | None
    object_reference: str | None
    error: dict[str, Any] | None


def request_state(obj: dict[str, Any]) -> RequestStateView:
    raw = obj.get("status")
    state = REQUEST_STATES.get(raw.strip().lower()) if isinstance(raw, str) else None
    if state is None:
        raise UnknownProviderStatus(
            "The provider reported an unknown request state", provider_code=str(raw)[:60]
        )
    server_id = obj.get("serverCorrelationId")
    reference = obj.get("objectReference")
    error = obj.get("error")
    return RequestStateView(
        state=state,
        server_correlation_id=str(server_id)[:100] if server_id else None,
        object_reference=str(reference)[:100] if reference else None,
        error=error if isinstance(error, dict) else None,
    )


def account_name(obj: dict[str, Any]) -> AccountName:
    """`GET /accounts/{type}/{id}/accountname`: {"name": {"fullName", "firstName", ...}}."""
    name = obj.get("name")
    if not isinstance(name, dict):
        raise UnknownProviderStatus("The provider's name enquiry has no name", provider_code="name")
    given = name.get("firstName") or None
    family = name.get("lastName") or None
    full = name.get("fullName") or " ".join(
        str(part) for part in (given, name.get("middleName"), family) if part
    )
    if not full:
        raise UnknownProviderStatus("The provider's name enquiry has no name", provider_code="name")
    return AccountName(full_name=str(full)[:200], given_name=given, family_name=family)
