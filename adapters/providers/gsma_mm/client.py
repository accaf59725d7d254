"""HTTP to a GSMA Mobile Money API provider, and nothing else.

Builds each request (X-Date, X-CorrelationID, X-Callback-URL, authentication, correlation
headers), sends it under the shared retry policy (`adapters.http.send_with_retries`) with
explicit timeouts, and turns transport failures into the error hierarchy. What the answers
mean is `mapping.py`'s business.

* Reads are replay-safe. The disbursement POST is replay-safe too because it always carries
  the X-CorrelationID the provider deduplicates on.
* A request that never left (refused connection, connect timeout) -> `ProviderUnavailable`;
  a read timeout on the POST -> `ProviderTimeout`; a connection lost after sending ->
  `ProviderOutcomeUnknown`. Reads that fail in transit are simply unavailable.
* OAuth 2.0 client credentials: one token per process, cached until shortly before it
  expires, shared by threads; a 401 drops it and the call is tried once more with a new one.
* Logs name the operation, status and duration; never a body (they hold MSISDNs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urljoin, urlparse

import requests

from adapters.base import ProviderOutcomeUnknown, ProviderTimeout, ProviderUnavailable
from adapters.http import RetryPolicy, Timeouts, log_retries, nothing_sent, send_with_retries
from gateway.domain.clock import Clock, rfc3339
from gateway.observability.context import outgoing_headers
from gateway.observability.logging import get_logger
from gateway.observability.metrics import PROVIDER_CALLS, PROVIDER_LATENCY

log = get_logger("adapters.providers.gsma_mm")
PROVIDER = "gsma_mm"
# Refresh a cached token this long before the provider says it expires.
TOKEN_SKEW = timedelta(seconds=30)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: its status, its JSON object (None if absent or not an object)."""

    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


class Authenticator:
    """No authentication (the embedded sandbox)."""

    def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        return None


class ApiKeyAuth(Authenticator):
    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self._api_key}


class OAuth2ClientCredentials(Authenticator):
    """Client-credentials tokens from `token_url`, cached until `TOKEN_SKEW` before expiry
    (half their lifetime for tokens of a minute or less)."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        session: requests.Session,
        timeouts: Timeouts,
        retry: RetryPolicy,
        clock: Clock,
        api_key: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.token_url = token_url
        self._credentials = (client_id, client_secret)
        self._session = session
        self._timeouts = timeouts
        self._retry = retry
        self._clock = clock
        self._api_key = api_key
        self._sleep = sleep
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = clock.now()

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._current()}"}
        if self._api_key:
            headers["X-API-Key"] = self._api_key
        return headers

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _current(self) -> str:
        with self._lock:  # one refresh at a time; the others wait and reuse it
            if self._token is None or self._clock.now() >= self._refresh_at:
                self._token, lifetime = self._fetch()
                now = self._clock.now()
                # Short-lived tokens (≤ 60 s) are refreshed half-way, not fetched per call.
                skew = min(TOKEN_SKEW, timedelta(seconds=lifetime / 2))
                self._refresh_at = now + timedelta(seconds=lifetime) - skew
            return self._token

    def _fetch(self) -> tuple[str, int]:
        started = time.perf_counter()
        headers = {"Accept": "application/json", **outgoing_headers()}
        if self._api_key:
            headers["X-API-Key"] = self._api_key
        try:
            response = send_with_retries(
                self._retry,
                lambda: self._session.post(
                    self.token_url,
                    data={"grant_type": "client_credentials"},
                    auth=self._credentials,
                    headers=headers,
                    timeout=self._timeouts.as_requests(),
                    allow_redirects=False,
                ),
                replay_safe=True,  # asking for a token twice does no harm
                sleep=self._sleep,
            )
        except requests.RequestException as exc:
            _record("token", "unavailable", started)
            raise ProviderUnavailable("The provider's token endpoint is unreachable") from exc
        if response.status_code == 429 or response.status_code >= 500:
            # Down or overloaded (after the retries): the credentials were not judged.
            _record("token", "unavailable", started)
            raise ProviderUnavailable(
                f"The provider's token endpoint answered HTTP {response.status_code}"
            )
        try:
            payload = response.json()
            token, lifetime = str(payload["access_token"]), int(payload.get("expires_in", 300))
        except (ValueError, KeyError, TypeError):
            _record("token", "error", started)
            raise ProviderUnavailable(
                f"The provider's token endpoint answered HTTP {response.status_code}",
                code="provider_authentication_failed",
            ) from None
        if response.status_code != 200 or not token:
            _record("token", "error", started)
            raise ProviderUnavailable(
                "The provider refused the bank's client credentials",
                code="provider_authentication_failed",
            )
        _record("token", "ok", started)
        return token, max(lifetime, 1)


def _record(operation: str, outcome: str, started: float) -> None:
    PROVIDER_CALLS.labels(PROVIDER, operation, outcome).inc()
    PROVIDER_LATENCY.labels(PROVIDER, operation).observe(time.perf_counter() - started)


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (429, 503):
        return "unavailable"
    if status >= 500:
        return "error"
    return "rejected"


class GsmaMmClient:
    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session,
        timeouts: Timeouts,
        retry: RetryPolicy,
        auth: Authenticator,
        clock: Clock,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeouts = timeouts
        self.retry = retry
        self.auth = auth
        self.clock = clock
        self.sleep = sleep

    # --- operations ----------------------------------------------------------------------------

    def create_disbursement(
        self, body: dict[str, Any], *, correlation_id: str, callback_url: str | None
    ) -> Answer:
        headers = {"X-CorrelationID": correlation_id, "Content-Type": "application/json"}
        if callback_url:
            headers["X-Callback-URL"] = callback_url
        return self._call(
            "disbursement", "POST", "/transactions/type/disbursement", headers=headers, json=body
        )

    def request_state(self, server_correlation_id: str) -> Answer:
        return self._call(
            "request_state", "GET", f"/requeststates/{quote(server_correlation_id, safe='')}"
        )

    def transaction(self, transaction_reference: str) -> Answer:
        return self._call(
            "transaction", "GET", f"/transactions/{quote(transaction_reference, safe='')}"
        )

    def response(self, client_correlation_id: str) -> Answer:
        """`GET /responses/{clientCorrelationId}`: finds the resource a lost answer created."""
        return self._call("response", "GET", f"/responses/{quote(client_correlation_id, safe='')}")

    def follow(self, link: str) -> Answer:
        """GET a `link` from a response object (relative, or absolute on the same host)."""
        target = urlparse(urljoin(self.base_url + "/", link))
        base = urlparse(self.base_url)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            raise ProviderOutcomeUnknown(
                "The provider's response link points elsewhere", code="provider_bad_response"
            )
        path = target.path
        if base.path and path.startswith(base.path):
            path = path[len(base.path) :]
        return self._call("transaction", "GET", path)

    def account_name(self, identifier_type: str, identifier: str) -> Answer:
        return self._call(
            "account_name",
            "GET",
            f"/accounts/{quote(identifier_type, safe='')}/{quote(identifier, safe='')}/accountname",
        )

    def heartbeat(self) -> Answer:
        return self._call("heartbeat", "GET", "/heartbeat")

    # --- plumbing ------------------------------------------------------------------------------

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> Answer:
        answer = self._send(operation, method, path, headers, json)
        if answer.status == 401 and isinstance(self.auth, OAuth2ClientCredentials):
            # The token may have been revoked or expired early: one more try with a new one.
            # A 401 means nothing was done, so this is safe for the POST too.
            self.auth.invalidate()
            answer = self._send(operation, method, path, headers, json)
        return answer

    def _send(
        self,
        operation: str,
        method: str,
        path: str,
        extra: dict[str, str] | None,
        json: dict[str, Any] | None,
    ) -> Answer:
        url = self.base_url + path
        started = time.perf_counter()

        def attempt() -> requests.Response:
            headers = {
                "Accept": "application/json",
                "X-Date": rfc3339(self.clock.now().replace(microsecond=0)),
                **outgoing_headers(),
                **self.auth.headers(),
                **(extra or {}),
            }
            return self.session.request(
                method,
                url,
                headers=headers,
                json=json,
                timeout=self.timeouts.as_requests(),
                allow_redirects=False,
            )

        try:
            response = send_with_retries(
                self.retry,
                attempt,
                replay_safe=True,
                sleep=self.sleep,
                on_retry=log_retries(log, PROVIDER, operation),
            )
        except requests.RequestException as exc:
            duration = round((time.perf_counter() - started) * 1000)
            if nothing_sent(exc) or method == "GET":
                _record(operation, "unavailable", started)
                log.warning(
                    "provider_call", provider=PROVIDER, operation=operation, outcome="unavailable",
                    error=type(exc).__name__, duration_ms=duration,
                )  # fmt: skip
                raise ProviderUnavailable("The provider could not be reached") from exc
            outcome = "timeout" if isinstance(exc, requests.Timeout) else "error"
            _record(operation, outcome, started)
            log.warning(
                "provider_call", provider=PROVIDER, operation=operation, outcome=outcome,
                error=type(exc).__name__, duration_ms=duration,
            )  # fmt: skip
            if isinstance(exc, requests.Timeout):
                raise ProviderTimeout("The provider did not answer in time") from exc
            raise ProviderOutcomeUnknown("The connection to the provider was lost") from exc
        try:
            payload = response.json() if response.content else None
        except ValueError:
            payload = None
        answer = Answer(
            response.status_code,
            payload if isinstance(payload, dict) else None,
            dict(response.headers.items()),
        )
        outcome = _outcome(response.status_code)
        _record(operation, outcome, started)
        log.info(
            "provider_call",
            provider=PROVIDER,
            operation=operation,
            status=response.status_code,
            outcome=outcome,
            duration_ms=round((time.perf_counter() - started) * 1000),
        )
        return answer
