"""Outgoing HTTP: one way to build a pooled `requests.Session`, and ONE retry policy.

Every adapter (providers, webhooks) builds its session here so they share the same rules:
connection pooling sized for the thread count, no retries inside urllib3 (retry decisions are
made once, by `send_with_retries`, so a money-moving POST is never silently re-sent), no proxy
or cookie settings picked up from the environment, optional client certificates (mTLS) and a
private CA bundle, and, where the caller asks for it, a guard that vets the address of every
new connection (used against SSRF and DNS rebinding). Timeouts are explicit on every call:
`Timeouts(connect, read).as_requests()`.

The retry policy (tenacity) is the same for every provider:

* a request that never left (connection refused, DNS failure, connect timeout) and a `429`
  (refused, not processed) may always be sent again;
* a request that may have been processed (read timeout, connection lost after sending, `500`,
  `502`, `503`, `504`) is sent again only when it is *replay-safe*: a read, or a money-moving
  POST that carries the provider's idempotency key (the provider deduplicates on it);
* waits are exponential with full jitter, bounded, and never shorter than the server's
  `Retry-After` (a `Retry-After` longer than the policy allows ends the retries instead).
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_random_exponential
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

# Called with the peer IP of each new connection; raises to refuse it.
AddressGuard = Callable[[str], None]


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float

    def as_requests(self) -> tuple[float, float]:
        return (self.connect, self.read)


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Servers we call must not be able to plant state that is replayed to later calls."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


def _guarded_pools(guard: AddressGuard) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes whose connections check the connected peer before any byte is sent."""

    def checked(sock: socket.socket) -> socket.socket:
        try:
            guard(str(sock.getpeername()[0]))
        except BaseException:
            sock.close()
            raise
        return sock

    class GuardedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return checked(super()._new_conn())

    class GuardedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return checked(super()._new_conn())

    class GuardedHTTPPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    return {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}


class _Adapter(HTTPAdapter):
    def __init__(self, *, pool_size: int, guard: AddressGuard | None) -> None:
        self._guard = guard
        super().__init__(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        if self._guard is not None:
            self.poolmanager.pool_classes_by_scheme = _guarded_pools(self._guard)


@dataclass(frozen=True)
class TlsOptions:
    """Client certificate for mutual TLS, and the CA bundle that issued the server's certificate
    (a private PKI); any of them may be absent. Files are checked when the session is built so
    a wrong path fails at start-up, not on the first payment."""

    client_cert: Path | None = None
    client_key: Path | None = None
    ca_bundle: Path | None = None

    def check(self) -> None:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("a client key needs its client certificate")
        for name, path in (
            ("client certificate", self.client_cert),
            ("client key", self.client_key),
            ("CA bundle", self.ca_bundle),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {path} is not a readable file")


def new_session(
    *,
    user_agent: str,
    pool_size: int = 10,
    address_guard: AddressGuard | None = None,
    headers: dict[str, str] | None = None,
    tls: TlsOptions | None = None,
) -> requests.Session:
    """A pooled session: no env proxies/netrc, no cookies, no urllib3 retries.

    Pass `timeout=` and `allow_redirects=` explicitly on every request made with it.
    """
    session = requests.Session()
    session.trust_env = False
    session.cookies.set_policy(_NoCookies())
    session.headers.update({"User-Agent": user_agent, **(headers or {})})
    if tls is not None:
        tls.check()
        if tls.client_cert is not None:
            session.cert = (
                (str(tls.client_cert), str(tls.client_key))
                if tls.client_key is not None
                else str(tls.client_cert)
            )
        if tls.ca_bundle is not None:
            session.verify = str(tls.ca_bundle)
    adapter = _Adapter(pool_size=pool_size, guard=address_guard)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# --- the retry policy ----------------------------------------------------------------------------

# Answers that mean "try again later". 429 is a refusal (never processed); the 5xx may follow
# processing, so they are retried only for replay-safe requests.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter: the n-th wait is random in
    [0, min(backoff_max, backoff_initial * 2^n)], and at least the server's Retry-After."""

    attempts: int = 3
    backoff_initial: float = 0.2
    backoff_max: float = 2.0
    retry_after_max: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")


@dataclass(frozen=True)
class RetryEvent:
    """Passed to `on_retry` before each wait: what failed and how long we wait."""

    attempt: int
    wait_seconds: float
    status_code: int | None
    error: str | None


def log_retries(log: Any, provider: str, operation: str) -> Callable[[RetryEvent], None]:
    """An `on_retry` that logs each retry the same way for every provider."""

    def on_retry(event: RetryEvent) -> None:
        log.warning(
            "provider_retry",
            provider=provider,
            operation=operation,
            attempt=event.attempt,
            status=event.status_code,
            error=event.error,
            wait_ms=round(event.wait_seconds * 1000),
        )

    return on_retry


def nothing_sent(error: BaseException) -> bool:
    """Whether a transport error happened before any byte of the request reached the server
    (connect timeout, refused connection, DNS failure): such a request can always be re-sent."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NewConnectionError | ConnectionRefusedError | socket.gaierror):
            return True
        reason = getattr(current, "reason", None)
        first = current.args[0] if current.args else None
        if isinstance(reason, BaseException):
            current = reason
        elif isinstance(first, BaseException):
            current = first
        else:
            current = current.__cause__ or current.__context__
    return False


def retry_after_seconds(response: requests.Response, now: datetime | None = None) -> float | None:
    """The response's Retry-After (delta-seconds or HTTP-date) in seconds, if any."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _retryable_error(error: BaseException, replay_safe: bool) -> bool:
    if not isinstance(error, requests.RequestException):
        return False  # our own bugs and address-guard refusals are not transient
    if nothing_sent(error):
        return True
    return replay_safe and isinstance(error, requests.Timeout | requests.ConnectionError)


def _retryable_response(
    response: requests.Response, replay_safe: bool, policy: RetryPolicy
) -> bool:
    if response.status_code not in RETRYABLE_STATUSES:
        return False
    if response.status_code != 429 and not replay_safe:
        return False
    delay = retry_after_seconds(response)
    return delay is None or delay <= policy.retry_after_max


def send_with_retries(
    policy: RetryPolicy,
    request: Callable[[], requests.Response],
    *,
    replay_safe: bool,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[RetryEvent], None] | None = None,
) -> requests.Response:
    """Call `request()` under the shared policy; return the last response (whatever its status)
    or raise the last transport error.

    `replay_safe`: the request may be repeated without doing anything twice (a read, or a POST
    carrying the provider's idempotency key). Otherwise only requests that were never received
    (connection refused, connect timeout, 429) are repeated.
    """
    jitter = wait_random_exponential(multiplier=policy.backoff_initial, max=policy.backoff_max)

    def should_retry(state: RetryCallState) -> bool:
        outcome = state.outcome
        assert outcome is not None
        if outcome.failed:
            error = outcome.exception()
            return error is not None and _retryable_error(error, replay_safe)
        return _retryable_response(outcome.result(), replay_safe, policy)

    def wait(state: RetryCallState) -> float:
        delay = float(jitter(state))
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            server = retry_after_seconds(outcome.result())
            if server is not None:
                delay = max(delay, server)
        return delay

    def before_sleep(state: RetryCallState) -> None:
        outcome = state.outcome
        assert outcome is not None
        status, error = None, None
        if outcome.failed:
            error = type(outcome.exception()).__name__
        else:
            response = outcome.result()
            status = response.status_code
            response.close()  # give the connection back to the pool before waiting
        if on_retry is not None:
            seconds = state.next_action.sleep if state.next_action else 0.0
            on_retry(RetryEvent(state.attempt_number, seconds, status, error))

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        retry=should_retry,
        sleep=sleep,
        before_sleep=before_sleep,
        # Out of attempts: hand back the last answer (or raise the last error) as it was.
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    response: requests.Response = retrying(request)
    return response
