"""adapters/http.py: pooled sessions that vet every connection and keep no cookies."""

from __future__ import annotations

import pytest

from adapters.http import Timeouts, new_session
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
