"""The HTTP SMS notifier against the SMS hub simulator over a loopback socket."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from adapters.base import NotifierError
from adapters.notifiers.sms_http import HttpSmsNotifier
from adapters.notifiers.sms_hub_simulator import SmsHubSimulator


@pytest.fixture
def hub() -> Iterator[tuple[SmsHubSimulator, str]]:
    simulator = SmsHubSimulator(token="hub-token")
    server = make_server("127.0.0.1", 0, simulator.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield simulator, f"http://127.0.0.1:{server.server_port}/messages"
    server.shutdown()


def test_a_message_reaches_the_hub_once(hub: Any, captured_logs: Any) -> None:
    simulator, url = hub
    notifier = HttpSmsNotifier(url, token="hub-token", sender="BANK")
    first = notifier.send_sms(
        to="+8613800000001", text="Bank: 123456 is your code", reference="lnk_1"
    )
    again = notifier.send_sms(
        to="+8613800000001", text="Bank: 123456 is your code", reference="lnk_1"
    )
    assert first == again  # the Idempotency-Key made the retry a no-op
    assert [m["sender"] for m in simulator.messages] == ["BANK"]
    assert "123456" not in captured_logs() and "13800000001" not in captured_logs()


def test_a_refusal_is_a_notifier_error(hub: Any) -> None:
    _simulator, url = hub
    with pytest.raises(NotifierError, match="HTTP 401"):
        HttpSmsNotifier(url, token="wrong").send_sms(to="+1", text="x", reference="r")


def test_an_unreachable_hub_is_retryable() -> None:
    notifier = HttpSmsNotifier("http://127.0.0.1:9/messages", timeout_seconds=0.5)
    with pytest.raises(NotifierError) as caught:
        notifier.send_sms(to="+1", text="x", reference="r")
    assert caught.value.retryable
