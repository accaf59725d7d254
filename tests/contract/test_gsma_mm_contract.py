"""The GSMA Mobile Money adapter against recorded exchanges (`contracts/providers/gsma_mm/`).

Each contract is a list of HTTP exchanges. `responses` answers them in order, and only when the
adapter's request matches the recording: URL, the headers that matter (authentication,
X-CorrelationID, X-Callback-URL, X-Date) and the JSON or form body. Then the test checks what
the adapter made of the answers. Every contract file is used by a test.

`test_live_sandbox_*` run against a real GSMA sandbox only when its credentials are in the
environment (`GATEWAY_TEST_GSMA_MM_BASE_URL`, `..._API_KEY`, optionally `..._CLIENT_ID` and
`..._CLIENT_SECRET`); otherwise they are skipped.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
from responses import matchers
from responses.registries import OrderedRegistry

from adapters.base import (
    AccountIdentifier,
    NotSupportedByProvider,
    PayoutRequest,
    ProviderRefs,
    ProviderRejected,
    ProviderUnavailable,
    UnknownProviderStatus,
)
from adapters.providers.gsma_mm import GsmaMmProvider, GsmaMmSettings
from adapters.providers.gsma_mm.mapping import correlation_id
from adapters.providers.settings import ProviderContext
from gateway import resources
from gateway.domain.clock import FrozenClock, SystemClock
from gateway.domain.ids import new_id
from gateway.domain.money import Money

CONTRACTS = resources.contracts_dir() / "providers" / "gsma_mm"
BASE = "https://mm.provider.example/mm/v1.2"
PAYOUT = "po_01jd9k3m6r1x8y0v4t2c5n7q9w"
CORRELATION = "01935331-d0d8-0f51-e06c-9a130b53dd3c"
SERVER_ID = "5f1b7a2c-3d4e-4f60-8a1b-2c3d4e5f6a7b"
TXN = "MM0A1B2C3D4E5F6A7B"
NOW = datetime(2026, 3, 2, 10, 15, 30, tzinfo=UTC)


def contract(name: str) -> dict[str, Any]:
    return dict(json.loads((CONTRACTS / f"{name}.json").read_text()))


def adapter(**overrides: Any) -> GsmaMmProvider:
    values: dict[str, Any] = {
        "base_url": BASE,
        "auth": "api_key",
        "api_key": "contract-api-key",
        "callback_api_key": "contract-callback-key",
        "clearing_account": "KES:9100000000000201",
        "disbursement_account": "accountid:2999",
        "retry_attempts": 2,
        "retry_backoff_seconds": 0,
        "retry_backoff_max_seconds": 0,
    }
    values.update(overrides)
    context = ProviderContext(
        environment="test",
        callback_base_url="https://gateway.bank.example",
        clock=FrozenClock(NOW),
    )
    return GsmaMmProvider(GsmaMmSettings(**values), context, sleep=lambda _seconds: None)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(
        registry=OrderedRegistry, assert_all_requests_are_fired=True
    ) as recorded:
        yield recorded


def replay(mock: responses.RequestsMock, name: str) -> None:
    """Register a contract's exchanges: each answered only if the request matches it."""
    for exchange in contract(name)["exchanges"]:
        request, response = exchange["request"], exchange["response"]
        match = [matchers.header_matcher(request["headers"])]
        if "body" in request:
            match.append(matchers.json_params_matcher(request["body"]))
        if "form" in request:
            match.append(matchers.urlencoded_params_matcher(request["form"]))
        mock.add(
            request["method"],
            request["url"],
            json=response["body"],
            status=response["status"],
            headers={k: v for k, v in response["headers"].items() if k != "Content-Type"},
            match=match,
        )


def payout_request() -> PayoutRequest:
    return PayoutRequest(
        reference=PAYOUT,
        idempotency_key=correlation_id(PAYOUT),
        amount=Money.parse("250.00", "KES"),
        recipient=AccountIdentifier("msisdn", "+254712345601"),
        description="School fees",
        callback_url="https://gateway.bank.example/v1/providers/gsma_mm/webhooks",
    )


def test_the_correlation_id_is_the_payout_id_as_a_uuid() -> None:
    assert correlation_id(PAYOUT) == CORRELATION
    assert adapter().idempotency_key(PAYOUT) == CORRELATION
    for _ in range(50):  # the ULID's 128 bits are the UUID: distinct ids, distinct keys
        first, second = new_id("po"), new_id("po")
        assert correlation_id(first) != correlation_id(second)
        assert uuid.UUID(correlation_id(first))


# --- disbursements -------------------------------------------------------------------------------


def test_disbursement_accepted(mock: responses.RequestsMock) -> None:
    replay(mock, "disbursement-accepted")
    result = adapter().payout(payout_request())
    assert (result.state, result.request_id) == ("pending", SERVER_ID)


def test_disbursement_completed(mock: responses.RequestsMock) -> None:
    replay(mock, "disbursement-completed")
    result = adapter().payout(payout_request())
    assert (result.state, result.provider_status) == ("succeeded", "completed")
    assert result.transaction_reference == TXN
    assert result.amount == Money.parse("250.00", "KES")
    assert result.echoed_reference == PAYOUT


def test_disbursement_accepted_already_completed(mock: responses.RequestsMock) -> None:
    replay(mock, "disbursement-accepted-completed")
    result = adapter().payout(payout_request())
    assert (result.state, result.request_id, result.transaction_reference) == (
        "succeeded",
        SERVER_ID,
        TXN,
    )


@pytest.mark.parametrize(
    ("name", "code", "provider_code"),
    [
        (
            "disbursement-rejected-insufficient-funds",
            "provider_insufficient_float",
            "businessRule.insufficientFunds",
        ),
        (
            "disbursement-rejected-recipient-not-found",
            "recipient_not_found",
            "identification.identifierError",
        ),
        (
            "disbursement-rejected-authorisation",
            "provider_authentication_failed",
            "authorisation.clientAuthorisationError",
        ),
        (
            "disbursement-rejected-validation",
            "provider_validation_failed",
            "validation.formatError",
        ),
    ],
)
def test_disbursement_refused(
    mock: responses.RequestsMock, name: str, code: str, provider_code: str
) -> None:
    replay(mock, name)
    result = adapter().payout(payout_request())
    assert (result.state, result.failure_code, result.provider_code) == (
        "failed",
        code,
        provider_code,
    )


def test_a_duplicate_request_is_answered_by_asking_where_it_stands(
    mock: responses.RequestsMock,
) -> None:
    replay(mock, "disbursement-duplicate")
    result = adapter().payout(payout_request())
    assert (result.state, result.transaction_reference) == ("succeeded", TXN)


def test_an_unavailable_provider_is_retried_then_reported(mock: responses.RequestsMock) -> None:
    replay(mock, "disbursement-unavailable")
    with pytest.raises(ProviderUnavailable) as raised:
        adapter().payout(payout_request())
    assert raised.value.provider_code == "serviceUnavailable.genericError"


def test_a_500_is_retried_under_the_same_correlation_id(mock: responses.RequestsMock) -> None:
    replay(mock, "disbursement-internal-error-then-accepted")
    result = adapter().payout(payout_request())
    assert result.state == "pending"
    sent = [call.request.headers["X-CorrelationID"] for call in mock.calls]
    assert sent == [CORRELATION, CORRELATION]


# --- OAuth 2.0 (client credentials) --------------------------------------------------------------
# The recordings answer in order and only a matching request: a token fetched more often than
# recorded, or a Bearer token that is not the one just issued, finds no answer and fails the test.

OAUTH2 = {"auth": "oauth2", "client_id": "contract-client", "client_secret": "contract-secret"}


def test_oauth2_token_then_bearer_and_api_key(mock: responses.RequestsMock) -> None:
    replay(mock, "disbursement-accepted-oauth2")
    provider = adapter(**OAUTH2)
    assert provider.payout(payout_request()).state == "pending"


def test_oauth2_a_refused_token_is_replaced_once(mock: responses.RequestsMock) -> None:
    replay(mock, "disbursement-accepted-oauth2-token-revoked")
    result = adapter(**OAUTH2).payout(payout_request())
    assert (result.state, result.request_id) == ("pending", SERVER_ID)
    sent = [
        (str(call.request.url).rsplit("/", 1)[-1], getattr(call.response, "status_code", None))
        for call in mock.calls
    ]
    assert sent == [("token", 200), ("disbursement", 401), ("token", 200), ("disbursement", 202)]


def test_oauth2_a_second_401_is_the_answer(mock: responses.RequestsMock) -> None:
    replay(mock, "disbursement-rejected-authorisation-oauth2")
    result = adapter(**OAUTH2).payout(payout_request())
    assert (result.state, result.failure_code, result.provider_code) == (
        "failed",
        "provider_authentication_failed",
        "authorisation.clientAuthorisationError",
    )
    assert len(mock.calls) == 4  # one retry with a new token, no loop


@pytest.mark.parametrize(
    "name", ["token-refused-invalid-client", "token-refused-unauthorized-client"]
)
def test_oauth2_a_refused_token_request_is_an_authentication_failure(
    mock: responses.RequestsMock, name: str
) -> None:
    replay(mock, name)
    with pytest.raises(ProviderUnavailable) as raised:  # nothing was sent: nothing was done
        adapter(**OAUTH2).payout(payout_request())
    assert raised.value.code == "provider_authentication_failed"
    assert len(mock.calls) == 1  # the disbursement never left
    said = f"{raised.value} {raised.value.detail} {raised.value.args!r}"
    for secret in ("contract-secret", "Y29udHJhY3QtY2xpZW50OmNvbnRyYWN0LXNlY3JldA=="):
        assert secret not in said


# --- status --------------------------------------------------------------------------------------


def test_request_state_pending(mock: responses.RequestsMock) -> None:
    replay(mock, "request-state-pending")
    result = adapter().payout_status(ProviderRefs(CORRELATION, request_id=SERVER_ID))
    assert result.state == "pending"


def test_request_state_completed_is_confirmed_by_the_transaction(
    mock: responses.RequestsMock,
) -> None:
    replay(mock, "request-state-completed")
    result = adapter().payout_status(ProviderRefs(CORRELATION, request_id=SERVER_ID))
    assert (result.state, result.transaction_reference) == ("succeeded", TXN)


def test_request_state_failed_carries_the_reason(mock: responses.RequestsMock) -> None:
    replay(mock, "request-state-failed")
    result = adapter().payout_status(ProviderRefs(CORRELATION, request_id=SERVER_ID))
    assert (result.state, result.failure_code) == ("failed", "provider_declined")


def test_a_forgotten_request_state_is_found_through_the_correlation_id(
    mock: responses.RequestsMock,
) -> None:
    replay(mock, "request-state-not-found")
    result = adapter().payout_status(ProviderRefs(CORRELATION, request_id=SERVER_ID))
    assert (result.state, result.transaction_reference, result.request_id) == (
        "succeeded",
        TXN,
        SERVER_ID,
    )
    assert result.echoed_reference == PAYOUT


def test_transaction_lookup(mock: responses.RequestsMock) -> None:
    replay(mock, "transaction-completed")
    refs = ProviderRefs(CORRELATION, request_id=SERVER_ID, transaction_reference=TXN)
    assert adapter().payout_status(refs).state == "succeeded"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("transaction-failed", "provider_failed"),
        ("transaction-rejected", "provider_failed"),
        ("transaction-reversed", "provider_reversed"),
    ],
)
def test_transaction_lookup_final_failures(
    mock: responses.RequestsMock, name: str, code: str
) -> None:
    replay(mock, name)
    refs = ProviderRefs(CORRELATION, request_id=SERVER_ID, transaction_reference=TXN)
    result = adapter().payout_status(refs)
    assert (result.state, result.provider_status, result.failure_code) == (
        "failed",
        name.removeprefix("transaction-"),
        code,
    )
    assert result.transaction_reference == TXN


def test_an_unknown_transaction_status_is_never_defaulted(mock: responses.RequestsMock) -> None:
    replay(mock, "transaction-unknown-status")
    with pytest.raises(UnknownProviderStatus):
        adapter().payout_status(ProviderRefs(CORRELATION, transaction_reference=TXN))


def test_no_record_of_a_lost_request_is_not_found(mock: responses.RequestsMock) -> None:
    replay(mock, "response-not-found")
    assert adapter().payout_status(ProviderRefs(CORRELATION)).state == "not_found"


# --- refunds -------------------------------------------------------------------------------------


def test_refunds_are_not_supported(mock: responses.RequestsMock) -> None:
    provider = adapter()
    assert provider.capabilities.refund is False
    with pytest.raises(NotSupportedByProvider) as raised:
        provider.refund(
            ProviderRefs(CORRELATION, transaction_reference=TXN),
            Money.parse("250.00", "KES"),
            reference="rf_01jd9k3m6r1x8y0v4t2c5n7q9x",
        )
    assert raised.value.code == "refund_not_supported"
    assert len(mock.calls) == 0  # said without asking the provider


# --- name enquiry --------------------------------------------------------------------------------


def test_account_name(mock: responses.RequestsMock) -> None:
    replay(mock, "account-name-found")
    name = adapter().lookup_account(AccountIdentifier("msisdn", "+254712345601"))
    assert (name.full_name, name.given_name, name.family_name) == (
        "Wanjiru Kamau",
        "Wanjiru",
        "Kamau",
    )


def test_account_name_unknown(mock: responses.RequestsMock) -> None:
    replay(mock, "account-name-not-found")
    with pytest.raises(ProviderRejected) as raised:
        adapter().lookup_account(AccountIdentifier("msisdn", "+254799999999"))
    assert raised.value.code == "recipient_not_found"


# --- callbacks -----------------------------------------------------------------------------------


def _callback(name: str) -> tuple[dict[str, str], bytes]:
    request = contract(name)["request"]
    return dict(request["headers"]), json.dumps(request["body"]).encode()


def test_success_callback_parses_into_a_hint() -> None:
    headers, body = _callback("callback-completed")
    note = adapter().verify_and_parse_webhook("PUT", headers, body)
    assert (note.idempotency_key, note.reference, note.transaction_reference) == (
        CORRELATION,
        PAYOUT,
        TXN,
    )
    assert note.result is not None and note.result.state == "succeeded"
    assert note.authoritative is False  # GSMA callbacks are unsigned: the status is fetched


def test_failure_callback_parses_into_a_hint() -> None:
    headers, body = _callback("callback-failed")
    note = adapter().verify_and_parse_webhook("PUT", headers, body)
    assert note.result is not None
    assert (note.result.state, note.result.failure_code) == (
        "failed",
        "provider_insufficient_float",
    )
    again = adapter().verify_and_parse_webhook("PUT", headers, body)
    assert again.event_id == note.event_id  # the same callback twice: one event


def test_every_recorded_contract_is_exercised() -> None:
    recorded = {path.stem for path in CONTRACTS.glob("*.json")}
    source = Path(__file__).read_text()
    unused = sorted(name for name in recorded if f'"{name}"' not in source)
    assert recorded, "no recorded contracts"
    assert unused == [], f"contracts no test uses: {unused}"


# --- a real sandbox (opt-in) ---------------------------------------------------------------------

SANDBOX = {
    "base_url": os.environ.get("GATEWAY_TEST_GSMA_MM_BASE_URL", ""),
    "api_key": os.environ.get("GATEWAY_TEST_GSMA_MM_API_KEY", ""),
    "client_id": os.environ.get("GATEWAY_TEST_GSMA_MM_CLIENT_ID", ""),
    "client_secret": os.environ.get("GATEWAY_TEST_GSMA_MM_CLIENT_SECRET", ""),
    "msisdn": os.environ.get("GATEWAY_TEST_GSMA_MM_MSISDN", "+44012345678"),
    "currency": os.environ.get("GATEWAY_TEST_GSMA_MM_CURRENCY", "RWF"),
    "debit_party": os.environ.get("GATEWAY_TEST_GSMA_MM_DEBIT_PARTY", "accountid:2999"),
}
needs_sandbox = pytest.mark.skipif(
    not (SANDBOX["base_url"] and SANDBOX["api_key"]),
    reason="set GATEWAY_TEST_GSMA_MM_BASE_URL and GATEWAY_TEST_GSMA_MM_API_KEY to run against "
    "a real GSMA Mobile Money sandbox",
)


def live_adapter() -> GsmaMmProvider:
    values: dict[str, Any] = {
        "base_url": SANDBOX["base_url"],
        "auth": "oauth2" if SANDBOX["client_id"] else "api_key",
        "api_key": SANDBOX["api_key"],
        "disbursement_account": SANDBOX["debit_party"],
        "clearing_account": f"{SANDBOX['currency']}:9100000000000201",
    }
    if SANDBOX["client_id"]:
        values.update(client_id=SANDBOX["client_id"], client_secret=SANDBOX["client_secret"])
    context = ProviderContext("test", "https://gateway.bank.example", SystemClock())
    return GsmaMmProvider(GsmaMmSettings(**values), context)


@pytest.mark.sandbox
@needs_sandbox
def test_live_sandbox_disbursement_reaches_a_final_state() -> None:
    provider = live_adapter()
    reference = new_id("po")
    request = PayoutRequest(
        reference=reference,
        idempotency_key=provider.idempotency_key(reference),
        amount=Money.parse("10.00", SANDBOX["currency"]),
        recipient=AccountIdentifier("msisdn", SANDBOX["msisdn"]),
        description="wallet-gateway contract test",
        callback_url="https://gateway.bank.example/v1/providers/gsma_mm/webhooks",
    )
    result = provider.payout(request)
    deadline = time.monotonic() + 60
    while result.state == "pending" and time.monotonic() < deadline:
        time.sleep(2)
        result = provider.payout_status(
            ProviderRefs(request.idempotency_key, result.request_id, result.transaction_reference)
        )
    assert result.state in ("succeeded", "failed"), result
    assert provider.payout(request).state in ("pending", "succeeded", "failed")  # replay-safe


@pytest.mark.sandbox
@needs_sandbox
def test_live_sandbox_name_enquiry_answers() -> None:
    name = live_adapter().lookup_account(AccountIdentifier("msisdn", SANDBOX["msisdn"]))
    assert name.full_name
