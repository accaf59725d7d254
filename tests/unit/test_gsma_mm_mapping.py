"""adapters/providers/gsma_mm/mapping.py: exhaustive status tables, the error table, bodies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.base import AccountIdentifier, PayoutRequest, UnknownProviderStatus
from adapters.providers.gsma_mm import mapping
from gateway.domain.ids import new_id
from gateway.domain.money import Money

# The harmonised errorCode enumeration of the GSMA Mobile Money API v1.2 errorObject.
GSMA_ERROR_CODES = """genericError dailyVolumeLimitExceeded dailyValueLimitExceeded
weeklyVolumeLimitExceeded weeklyValueLimitExceeded monthlyVolumeLimitExceeded
monthlyValueLimitExceeded accountMaxTotalVolumeExceeded accountMaxTotalValueExceeded
lessThanTransactionMinValue greaterThanTransactionMaxValue maxBalanceExceeded samePartiesError
duplicateRequest insufficientFunds incorrectState underPaymentNotAllowed overPaymentNotAllowed
rateLimitError transactionTypeError noMandateAuthority linkViolation countryofOriginNotPermitted
nationalityNotPermitted idDocumentNotSupported issuingCountryNotSupported quoteHasExpired
identifierError lengthError formatError negativeValue currencyNotSupported
mandatoryValueNotSupplied invalidOffset clientAuthorisationError requestDeclined
servicingPartyAuthorisationError requestingPartyAuthorisationError""".split()
GSMA_CATEGORIES = [
    "businessRule",
    "validation",
    "authorisation",
    "identification",
    "internal",
    "serviceUnavailable",
]


def test_request_states_are_the_specifications() -> None:
    assert set(mapping.REQUEST_STATES) == {"pending", "completed", "failed"}


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("pending", "pending"),
        ("completed", "succeeded"),
        ("Completed", "succeeded"),
        ("failed", "failed"),
        ("rejected", "failed"),
        ("reversed", "failed"),
    ],
)
def test_transaction_statuses_map(status: str, state: str) -> None:
    result = mapping.transaction_result({"transactionStatus": status, "transactionReference": "T1"})
    assert result.state == state
    assert result.provider_status == status


@pytest.mark.parametrize("status", ["onhold", "", "success", "COMPLETE"])
def test_an_unknown_transaction_status_raises(status: str) -> None:
    with pytest.raises(UnknownProviderStatus):
        mapping.transaction_result({"transactionStatus": status})


def test_a_missing_status_raises() -> None:
    with pytest.raises(UnknownProviderStatus):
        mapping.transaction_result({"transactionReference": "T1"})
    with pytest.raises(UnknownProviderStatus):
        mapping.request_state({"serverCorrelationId": "x", "status": "done"})


def test_a_reversal_is_a_failure_with_its_own_code() -> None:
    result = mapping.transaction_result({"transactionStatus": "reversed"})
    assert (result.failure_code, result.state) == ("provider_reversed", "failed")


def test_the_reported_amount_is_read_exactly_or_refused() -> None:
    ok = mapping.transaction_result(
        {"transactionStatus": "completed", "amount": "250.5", "currency": "KES"}
    )
    assert ok.amount == Money.parse("250.50", "KES")
    with pytest.raises(UnknownProviderStatus):
        mapping.transaction_result(
            {"transactionStatus": "completed", "amount": "1.234", "currency": "KES"}
        )


@pytest.mark.parametrize("category", GSMA_CATEGORIES)
@pytest.mark.parametrize("code", GSMA_ERROR_CODES)
def test_every_gsma_error_has_a_rule(category: str, code: str) -> None:
    rule = mapping.error_rule(category, code)
    assert rule.outcome in ("rejected", "unavailable", "unknown", "duplicate", "not_found")
    assert rule.code and rule.message


@pytest.mark.parametrize(
    ("category", "code", "outcome", "ours"),
    [
        ("businessRule", "insufficientFunds", "rejected", "provider_insufficient_float"),
        ("businessRule", "duplicateRequest", "duplicate", "duplicate_request"),
        ("businessRule", "rateLimitError", "unavailable", "provider_rate_limited"),
        ("businessRule", "quoteHasExpired", "rejected", "provider_rejected"),  # category default
        ("identification", "identifierError", "not_found", "recipient_not_found"),
        ("authorisation", "clientAuthorisationError", "rejected", "provider_authentication_failed"),
        ("authorisation", "requestDeclined", "rejected", "provider_declined"),
        ("internal", "genericError", "unknown", "provider_error"),
        ("serviceUnavailable", "genericError", "unavailable", "provider_unavailable"),
        ("validation", "currencyNotSupported", "rejected", "currency_not_supported"),
    ],
)
def test_error_rules(category: str, code: str, outcome: str, ours: str) -> None:
    rule = mapping.error_rule(category, code)
    assert (rule.outcome, rule.code) == (outcome, ours)


def test_an_unknown_error_category_raises() -> None:
    with pytest.raises(UnknownProviderStatus):
        mapping.error_rule("mystery", "genericError")
    with pytest.raises(UnknownProviderStatus):
        mapping.error_rule(None, "genericError")


def test_categories_have_the_specifications_http_status() -> None:
    assert mapping.CATEGORY_STATUS == {
        "businessRule": 400,
        "validation": 400,
        "authorisation": 401,
        "identification": 404,
        "internal": 500,
        "serviceUnavailable": 503,
    }
    assert set(mapping.CATEGORY_DEFAULTS) == set(GSMA_CATEGORIES)


def test_a_failure_callback_with_a_transient_reason_is_still_final() -> None:
    result = mapping.failed_result({"errorCategory": "internal", "errorCode": "genericError"})
    assert (result.state, result.failure_code) == ("failed", "provider_failed")


def test_the_disbursement_body() -> None:
    request = PayoutRequest(
        reference="po_01jd9k3m6r1x8y0v4t2c5n7q9w",
        idempotency_key="x",
        amount=Money.parse("1000", "UGX"),
        recipient=AccountIdentifier("walletid", "W123"),
        description="x" * 200,
    )
    body = mapping.disbursement_body(
        request,
        debit_party=("accountid", "2999"),
        requesting_organisation_id="BANK01",
        now=datetime(2026, 3, 2, 10, 15, 30, 123456, tzinfo=UTC),
    )
    assert body == {
        "amount": "1000",
        "currency": "UGX",
        "creditParty": [{"key": "walletid", "value": "W123"}],
        "debitParty": [{"key": "accountid", "value": "2999"}],
        "requestingOrganisationTransactionReference": "po_01jd9k3m6r1x8y0v4t2c5n7q9w",
        "requestDate": "2026-03-02T10:15:30Z",
        "descriptionText": "x" * 160,
        "requestingOrganisation": {
            "requestingOrganisationIdentifierType": "organisationid",
            "requestingOrganisationIdentifier": "BANK01",
        },
    }


def test_correlation_ids_are_stable_uuids() -> None:
    reference = new_id("po")
    assert mapping.correlation_id(reference) == mapping.correlation_id(reference)
    assert mapping.is_uuid(mapping.correlation_id(reference))
    assert mapping.is_uuid(mapping.correlation_id("not-a-ulid"))  # name-based fallback
    assert mapping.correlation_id("a") != mapping.correlation_id("b")
    assert not mapping.is_uuid("po_01jd9k3m6r1x8y0v4t2c5n7q9w")


def test_account_names() -> None:
    full = mapping.account_name({"name": {"firstName": "Wanjiru", "lastName": "Kamau"}})
    assert (full.full_name, full.given_name) == ("Wanjiru Kamau", "Wanjiru")
    with pytest.raises(UnknownProviderStatus):
        mapping.account_name({"name": {}})
    with pytest.raises(UnknownProviderStatus):
        mapping.account_name({})
