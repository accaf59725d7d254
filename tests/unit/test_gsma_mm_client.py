"""adapters/providers/gsma_mm/client.py: the OAuth 2.0 client-credentials token (cached, renewed
`TOKEN_SKEW` before it expires, one fetch for all threads, dropped on a 401) and what a token
endpoint that refuses or answers nonsense becomes. Time is the adapter's injected clock (a
`FrozenClock` moved by the test); HTTP is `responses` (nothing leaves the process).

The recorded wire exchanges of the same flows (401 then a new token, a refused token request)
are in tests/contract/test_gsma_mm_contract.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from adapters.base import (
    AccountIdentifier,
    ProviderRefs,
    ProviderRejected,
    ProviderUnavailable,
)
from adapters.providers.gsma_mm import GsmaMmProvider, GsmaMmSettings
from adapters.providers.gsma_mm.client import TOKEN_SKEW
from adapters.providers.settings import ProviderContext
from gateway.domain.clock import FrozenClock

BASE = "https://mm.provider.example/mm/v1.2"
TOKEN_URL = f"{BASE}/oauth/token"
STATE_URL = f"{BASE}/requeststates/5f1b7a2c-3d4e-4f60-8a1b-2c3d4e5f6a7b"
NAME_URL = f"{BASE}/accounts/msisdn/%2B254712345601/accountname"
SECRET = "s3cr3t-never-shown"
BASIC = "Basic Y2xpZW50LWlkOnMzY3IzdC1uZXZlci1zaG93bg=="  # client-id:s3cr3t-never-shown
NOW = datetime(2026, 3, 2, 10, 15, 30, tzinfo=UTC)
STATE = {"serverCorrelationId": "5f1b7a2c-3d4e-4f60-8a1b-2c3d4e5f6a7b", "status": "pending"}
NAME = {"name": {"fullName": "Wanjiru Kamau"}}


def oauth2_provider(**overrides: Any) -> GsmaMmProvider:
    values: dict[str, Any] = {
        "base_url": BASE,
        "auth": "oauth2",
        "client_id": "client-id",
        "client_secret": SECRET,
        "clearing_account": "KES:9100000000000201",
        "retry_attempts": 2,
        "retry_backoff_seconds": 0,
        "retry_backoff_max_seconds": 0,
    }
    values.update(overrides)
    context = ProviderContext("test", "https://gateway.bank.example", FrozenClock(NOW))
    return GsmaMmProvider(GsmaMmSettings(**values), context, sleep=lambda _seconds: None)


def clock_of(provider: GsmaMmProvider) -> FrozenClock:
    clock = provider.context.clock
    assert isinstance(clock, FrozenClock)
    return clock


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as recorded:
        yield recorded


class TokenEndpoint:
    """Issues `token-1`, `token-2`, ... to the right client credentials only."""

    def __init__(self, mock: responses.RequestsMock, *, expires_in: int | None = 3600) -> None:
        self.issued: list[str] = []
        self.expires_in = expires_in
        self.delay = 0.0
        self._lock = threading.Lock()
        mock.add_callback(
            responses.POST,
            TOKEN_URL,
            callback=self,
            match=[
                matchers.header_matcher({"Authorization": BASIC}),
                matchers.urlencoded_params_matcher({"grant_type": "client_credentials"}),
            ],
        )

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        time.sleep(self.delay)  # widens the window for threads racing to refresh
        with self._lock:
            token = f"token-{len(self.issued) + 1}"
            self.issued.append(token)
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return 200, {"Content-Type": "application/json"}, json.dumps(body)


def bearers(mock: responses.RequestsMock, url: str) -> list[str | None]:
    return [
        call.request.headers.get("Authorization") for call in mock.calls if call.request.url == url
    ]


# --- the cached token ----------------------------------------------------------------------------


def test_one_token_serves_every_call_until_it_is_due(mock: responses.RequestsMock) -> None:
    tokens = TokenEndpoint(mock)
    mock.get(STATE_URL, json=STATE)
    mock.get(NAME_URL, json=NAME)
    provider = oauth2_provider()

    for _ in range(3):
        provider.client.request_state(STATE["serverCorrelationId"])
        provider.client.account_name("msisdn", "+254712345601")

    assert tokens.issued == ["token-1"]  # the token endpoint was asked once
    assert bearers(mock, STATE_URL) + bearers(mock, NAME_URL) == ["Bearer token-1"] * 6


@pytest.mark.parametrize(
    ("expires_in", "lifetime", "skew"),
    [(3600, 3600, TOKEN_SKEW), (None, 300, TOKEN_SKEW), (20, 20, timedelta(seconds=10))],
)
def test_the_token_is_renewed_token_skew_before_it_expires(
    mock: responses.RequestsMock, expires_in: int | None, lifetime: int, skew: timedelta
) -> None:
    """`expires_in` absent: 300 s assumed. A 20 s token is renewed half-way, not per call."""
    tokens = TokenEndpoint(mock, expires_in=expires_in)
    mock.get(STATE_URL, json=STATE)
    provider = oauth2_provider()
    clock = clock_of(provider)
    due = timedelta(seconds=lifetime) - skew

    provider.client.request_state(STATE["serverCorrelationId"])
    clock.advance(due - timedelta(seconds=1))
    provider.client.request_state(STATE["serverCorrelationId"])
    assert tokens.issued == ["token-1"]

    clock.advance(seconds=1)  # TOKEN_SKEW before the provider's expiry: a new one
    provider.client.request_state(STATE["serverCorrelationId"])
    clock.advance(due - timedelta(seconds=1))
    provider.client.request_state(STATE["serverCorrelationId"])

    assert tokens.issued == ["token-1", "token-2"]
    assert bearers(mock, STATE_URL) == [
        "Bearer token-1",
        "Bearer token-1",
        "Bearer token-2",
        "Bearer token-2",
    ]


def test_threads_share_one_token_fetch(mock: responses.RequestsMock) -> None:
    tokens = TokenEndpoint(mock)
    tokens.delay = 0.05
    mock.get(STATE_URL, json=STATE)
    provider = oauth2_provider()
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            start.wait()
            provider.client.request_state(STATE["serverCorrelationId"])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert errors == []
    assert tokens.issued == ["token-1"]
    assert bearers(mock, STATE_URL) == ["Bearer token-1"] * 8


# --- 401 from the API ----------------------------------------------------------------------------


def test_a_401_drops_the_token_and_the_call_is_made_once_more(
    mock: responses.RequestsMock,
) -> None:
    tokens = TokenEndpoint(mock)
    unauthorised = {"errorCategory": "authorisation", "errorCode": "clientAuthorisationError"}
    mock.get(NAME_URL, json=unauthorised, status=401)
    mock.get(NAME_URL, json=NAME)
    provider = oauth2_provider()

    name = provider.client.account_name("msisdn", "+254712345601")

    assert name.status == 200
    assert tokens.issued == ["token-1", "token-2"]
    assert bearers(mock, NAME_URL) == ["Bearer token-1", "Bearer token-2"]
    provider.client.account_name("msisdn", "+254712345601")
    assert tokens.issued == ["token-1", "token-2"]  # the new token is kept


def test_a_second_401_is_a_typed_authentication_error_not_a_loop(
    mock: responses.RequestsMock,
) -> None:
    tokens = TokenEndpoint(mock)
    unauthorised = {"errorCategory": "authorisation", "errorCode": "clientAuthorisationError"}
    mock.get(NAME_URL, json=unauthorised, status=401)
    mock.get(NAME_URL, json=unauthorised, status=401)
    mock.get(NAME_URL, body=AssertionError("a third try"))  # fails the test instead of hanging
    provider = oauth2_provider()

    with pytest.raises(ProviderRejected) as raised:
        provider.lookup_account(AccountIdentifier("msisdn", "+254712345601"))

    assert raised.value.code == "provider_authentication_failed"
    assert raised.value.provider_code == "authorisation.clientAuthorisationError"
    assert tokens.issued == ["token-1", "token-2"]
    assert len(bearers(mock, NAME_URL)) == 2


def test_with_an_api_key_only_a_401_is_not_retried(mock: responses.RequestsMock) -> None:
    mock.get(NAME_URL, json={"errorCategory": "authorisation"}, status=401)
    provider = oauth2_provider(auth="api_key", api_key="the-key")

    assert provider.client.account_name("msisdn", "+254712345601").status == 401
    assert len(mock.calls) == 1


@pytest.mark.parametrize(
    "refs",
    [
        ProviderRefs(idempotency_key="po1", transaction_reference="MM0001"),
        ProviderRefs(idempotency_key="po1", request_id=STATE["serverCorrelationId"]),
    ],
)
def test_credentials_refused_on_a_status_query_leave_the_payout_in_doubt(
    mock: responses.RequestsMock, refs: ProviderRefs
) -> None:
    """Nothing is known about the payout: unavailable (asked again later), not a refusal of
    the payout, and the cause is kept."""
    unauthorised = {"errorCategory": "authorisation", "errorCode": "clientAuthorisationError"}
    mock.get(f"{BASE}/transactions/MM0001", json=unauthorised, status=401)
    mock.get(STATE_URL, json=unauthorised, status=401)
    provider = oauth2_provider(auth="api_key", api_key="the-key")

    with pytest.raises(ProviderUnavailable) as raised:
        provider.payout_status(refs)

    assert raised.value.code == "provider_authentication_failed"
    assert raised.value.provider_code == "authorisation.clientAuthorisationError"


# --- a token endpoint that refuses or talks nonsense ----------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (401, '{"error": "invalid_client"}', "application/json"),
        (400, '{"error": "invalid_grant", "error_description": "bad"}', "application/json"),
        (200, "<html><body>Sign in</body></html>", "text/html"),  # a login page
        (200, "", "application/json"),
        (200, '["token"]', "application/json"),
        (200, '{"token_type": "Bearer", "expires_in": 3600}', "application/json"),
        (200, '{"access_token": "", "expires_in": 3600}', "application/json"),
        (200, '{"access_token": "t", "expires_in": "soon"}', "application/json"),
        (403, '{"access_token": "t", "expires_in": 3600}', "application/json"),
    ],
)
def test_a_failed_token_request_is_an_authentication_failure_without_the_secret(
    mock: responses.RequestsMock, status: int, body: str, content_type: str
) -> None:
    mock.post(TOKEN_URL, body=body, status=status, content_type=content_type)
    provider = oauth2_provider()

    with pytest.raises(ProviderUnavailable) as raised:
        provider.client.request_state(STATE["serverCorrelationId"])

    assert raised.value.code == "provider_authentication_failed"
    assert [call.request.url for call in mock.calls] == [TOKEN_URL]  # the API was not called
    exc: BaseException | None = raised.value
    while exc is not None:  # nor anything it was raised from
        said = f"{exc} {exc!r} {getattr(exc, 'detail', '')}"
        assert SECRET not in said and BASIC.split()[1] not in said
        exc = exc.__cause__ or exc.__context__


def test_a_refused_token_is_not_remembered(mock: responses.RequestsMock) -> None:
    mock.post(TOKEN_URL, json={"error": "invalid_client"}, status=401)
    provider = oauth2_provider()
    with pytest.raises(ProviderUnavailable):
        provider.client.request_state(STATE["serverCorrelationId"])

    tokens = TokenEndpoint(mock)  # the credentials are fixed at the provider
    mock.get(STATE_URL, json=STATE)
    assert provider.client.request_state(STATE["serverCorrelationId"]).status == 200
    assert tokens.issued == ["token-1"]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_token_endpoint_that_is_down_is_unavailable_not_a_refusal(
    mock: responses.RequestsMock, status: int
) -> None:
    """The credentials were not judged: the payout may be sent later, with a token."""
    error = {"errorCategory": "serviceUnavailable", "errorCode": "genericError"}
    mock.post(TOKEN_URL, json=error, status=status)
    provider = oauth2_provider()

    with pytest.raises(ProviderUnavailable) as raised:
        provider.client.request_state(STATE["serverCorrelationId"])

    assert raised.value.code == "provider_unavailable"
    assert [call.request.url for call in mock.calls] == [TOKEN_URL] * 2  # retried once


def test_an_unreachable_token_endpoint_is_unavailable(mock: responses.RequestsMock) -> None:
    mock.post(TOKEN_URL, body=requests.ConnectionError("refused"))
    provider = oauth2_provider()

    with pytest.raises(ProviderUnavailable) as raised:
        provider.client.request_state(STATE["serverCorrelationId"])

    assert raised.value.code == "provider_unavailable"
    assert SECRET not in f"{raised.value} {raised.value.__cause__!r}"
    assert [call.request.url for call in mock.calls] == [TOKEN_URL] * 2  # retried once
