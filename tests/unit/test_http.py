"""adapters/http.py: pooled sessions that vet every connection and keep no cookies, optional
client certificates, and the ONE retry policy every provider shares: replay-safe requests
(reads, POSTs carrying the provider's idempotency key) are repeated on transient failures;
anything else only when it provably never reached the server."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import requests
import responses

from adapters.http import (
    RetryEvent,
    RetryPolicy,
    Timeouts,
    TlsOptions,
    log_retries,
    new_session,
    nothing_sent,
    retry_after_seconds,
    send_with_retries,
)
from tests.webhook_sink import WebhookSink


class Refused(Exception):
    pass


def test_the_guard_sees_every_new_connection_and_can_refuse_it() -> None:
    seen: list[str] = []
    with WebhookSink() as sink:
        session = new_session(user_agent="test/1", address_guard=seen.append)
        assert session.post(sink.url, data=b"{}", timeout=(1, 1)).status_code == 204
        assert seen == ["127.0.0.1"]

        def refuse(address: str) -> None:
            raise Refused(address)

        guarded = new_session(user_agent="test/1", address_guard=refuse)
        with pytest.raises(Refused):
            guarded.post(sink.url, data=b"{}", timeout=(1, 1))
        assert len(sink.received) == 1  # the refused request never reached the receiver


def test_no_cookies_no_retries_no_environment() -> None:
    with WebhookSink(lambda _r: (200, {"Set-Cookie": "track=1; Path=/"}, b"ok")) as sink:
        session = new_session(user_agent="test/1", headers={"X-Extra": "1"})
        session.post(sink.url, data=b"{}", timeout=Timeouts(1, 1).as_requests())
        session.post(sink.url, data=b"{}", timeout=Timeouts(1, 1).as_requests())
        assert [r.headers.get("cookie") for r in sink.received] == [None, None]
        assert sink.received[0].headers["user-agent"] == "test/1"
        assert sink.received[0].headers["x-extra"] == "1"
    assert session.trust_env is False  # no proxies or netrc from the environment
    for scheme in ("http://", "https://"):
        assert session.get_adapter(scheme + "x.example").max_retries.total == 0  # type: ignore[attr-defined]


# --- the retry policy ----------------------------------------------------------------------------

URL = "https://provider.example/api"
POLICY = RetryPolicy(attempts=3, backoff_initial=0.1, backoff_max=0.4, retry_after_max=5)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def post(session: requests.Session, url: str = URL, timeout: float = 2.0) -> requests.Response:
    return session.post(url, json={"a": 1}, timeout=timeout)


@responses.activate
def test_replay_safe_requests_are_retried_on_5xx_with_bounded_jittered_waits() -> None:
    for status in (503, 502, 500):
        responses.post(URL, status=status)
    session = new_session(user_agent="test/1")
    sleeps, events = Sleeps(), list[RetryEvent]()

    response = send_with_retries(
        POLICY, lambda: post(session), replay_safe=True, sleep=sleeps, on_retry=events.append
    )

    assert response.status_code == 500  # out of attempts: the last answer, as it was
    assert len(responses.calls) == 3
    assert len(sleeps) == 2 and all(0 <= s <= POLICY.backoff_max for s in sleeps)
    assert [(e.attempt, e.status_code) for e in events] == [(1, 503), (2, 502)]


@responses.activate
def test_a_request_that_may_have_been_processed_is_not_repeated_without_idempotency() -> None:
    responses.post(URL, status=500)
    responses.post(URL, status=200)
    session = new_session(user_agent="test/1")

    response = send_with_retries(POLICY, lambda: post(session), replay_safe=False, sleep=Sleeps())

    assert response.status_code == 500
    assert len(responses.calls) == 1


@responses.activate
def test_429_is_a_refusal_and_is_always_retried_after_retry_after() -> None:
    responses.post(URL, status=429, headers={"Retry-After": "3"})
    responses.post(URL, status=201)
    session = new_session(user_agent="test/1")
    sleeps = Sleeps()

    response = send_with_retries(POLICY, lambda: post(session), replay_safe=False, sleep=sleeps)

    assert response.status_code == 201
    assert sleeps == [3.0]  # never earlier than the server asked


@responses.activate
def test_a_retry_after_beyond_the_policy_ends_the_retries() -> None:
    responses.post(URL, status=503, headers={"Retry-After": "3600"})
    session = new_session(user_agent="test/1")
    sleeps = Sleeps()

    response = send_with_retries(POLICY, lambda: post(session), replay_safe=True, sleep=sleeps)

    assert response.status_code == 503 and sleeps == []


@responses.activate
def test_4xx_are_answers_not_failures() -> None:
    responses.post(URL, status=400)
    session = new_session(user_agent="test/1")
    response = send_with_retries(POLICY, lambda: post(session), replay_safe=True, sleep=Sleeps())
    assert response.status_code == 400 and len(responses.calls) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_never_sent_anything_so_it_is_retried_even_unsafe() -> None:
    session = new_session(user_agent="test/1")
    url = f"http://127.0.0.1:{_closed_port()}/pay"
    sleeps = Sleeps()

    with pytest.raises(requests.ConnectionError) as raised:
        send_with_retries(POLICY, lambda: post(session, url), replay_safe=False, sleep=sleeps)

    assert nothing_sent(raised.value)
    assert len(sleeps) == POLICY.attempts - 1


def _slow(_request: object) -> int:
    time.sleep(0.5)
    return 200


@pytest.mark.parametrize(("replay_safe", "attempts"), [(False, 1), (True, 2)])
def test_a_read_timeout_is_repeated_only_when_replay_safe(replay_safe: bool, attempts: int) -> None:
    policy = RetryPolicy(attempts=2, backoff_initial=0, backoff_max=0)
    with WebhookSink(_slow) as sink:
        session = new_session(user_agent="test/1")
        with pytest.raises(requests.ReadTimeout) as raised:
            send_with_retries(
                policy,
                lambda: post(session, sink.url, timeout=0.1),
                replay_safe=replay_safe,
                sleep=Sleeps(),
            )
        assert not nothing_sent(raised.value)  # the server got it: the outcome is unknown
        deadline = time.monotonic() + 2
        while len(sink.received) < attempts and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(sink.received) == attempts


def test_an_address_guard_refusal_is_not_retried() -> None:
    class Refused(Exception):
        pass

    def refuse(_address: str) -> None:
        raise Refused

    with WebhookSink() as sink:
        session = new_session(user_agent="test/1", address_guard=refuse)
        with pytest.raises(Refused):
            send_with_retries(
                POLICY, lambda: post(session, sink.url), replay_safe=True, sleep=Sleeps()
            )
        assert sink.received == []


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    response = requests.Response()
    response.headers["Retry-After"] = "7"
    assert retry_after_seconds(response, now) == 7.0
    response.headers["Retry-After"] = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(response, now) == 30.0
    response.headers["Retry-After"] = "soon"
    assert retry_after_seconds(response, now) is None


def test_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


def test_client_certificate_and_ca_bundle(tmp_path: Path) -> None:
    cert, key, bundle = (tmp_path / name for name in ("client.pem", "client.key", "ca.pem"))
    for path in (cert, key, bundle):
        path.write_text("-----BEGIN CERTIFICATE-----\n")

    session = new_session(user_agent="test/1", tls=TlsOptions(cert, key, bundle))

    assert session.cert == (str(cert), str(key))
    assert session.verify == str(bundle)
    assert new_session(user_agent="t", tls=TlsOptions(client_cert=cert)).cert == str(cert)
    assert new_session(user_agent="t").verify is True  # the system trust store by default


def test_tls_files_are_checked_when_the_session_is_built(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a readable file"):
        new_session(user_agent="t", tls=TlsOptions(client_cert=tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="needs its client certificate"):
        new_session(user_agent="t", tls=TlsOptions(client_key=tmp_path / "k"))


def test_retries_are_logged_alike_for_every_provider() -> None:
    logged: list[tuple[str, dict[str, object]]] = []

    class Recorder:
        def warning(self, event: str, **fields: object) -> None:
            logged.append((event, fields))

    on_retry = log_retries(Recorder(), "gsma_mm", "disbursement")
    on_retry(RetryEvent(attempt=2, wait_seconds=0.25, status_code=503, error=None))
    assert logged == [
        (
            "provider_retry",
            {
                "provider": "gsma_mm",
                "operation": "disbursement",
                "attempt": 2,
                "status": 503,
                "error": None,
                "wait_ms": 250,
            },
        )
    ]
