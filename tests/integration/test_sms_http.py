"""The HTTP SMS notifier against the SMS hub simulator over a loopback socket."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from adapters.base import NotifierError
from adapters.notifiers.sms_http import HttpSmsNotifier
from adapters.notifiers.sms_hub_simulator import SmsHubSimulator
from gateway.settings import SettingsError, load_settings


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


@pytest.fixture
def receiver() -> Iterator[tuple[list[dict[str, Any]], str]]:
    """A loopback SMS endpoint that keeps the headers of every request it receives."""
    seen: list[dict[str, Any]] = []
    app = Flask("sms-receiver")

    @app.post("/messages")
    def receive() -> Any:
        seen.append({"authorization": request.headers.get("Authorization"), **request.json})
        return jsonify({"id": f"sms_{len(seen)}"}), 202

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield seen, f"http://127.0.0.1:{server.server_port}/messages"
    server.shutdown()


def test_basic_auth_sends_the_credentials(receiver: Any) -> None:
    seen, url = receiver
    notifier = HttpSmsNotifier(url, token="bank-app:pa:ss", auth="basic")
    assert notifier.send_sms(to="+8613800000002", text="hello", reference="lnk_2") == "sms_1"
    expected = "Basic " + base64.b64encode(b"bank-app:pa:ss").decode()  # split at the first ':'
    assert [m["authorization"] for m in seen] == [expected]


@pytest.mark.parametrize("token", ["no-colon-here", None, ""])
def test_basic_auth_without_user_and_password_fails_at_construction(
    receiver: Any, token: str | None
) -> None:
    seen, url = receiver
    with pytest.raises(SettingsError, match="user:password") as caught:
        HttpSmsNotifier(url, token=token, auth="basic")
    assert "no-colon-here" not in str(caught.value)  # a credential is never echoed
    assert seen == []


def test_the_gateway_refuses_to_start_with_an_unusable_basic_token(tmp_path: Path) -> None:
    from gateway.container import build_notifier

    settings = load_settings(
        environment="test",
        data_dir=tmp_path,
        notifier="http",
        sms_gateway_url="http://127.0.0.1:9/messages",
        sms_gateway_auth="basic",
        sms_gateway_token="only-a-password",
    )
    with pytest.raises(SettingsError, match="GATEWAY_SMS_GATEWAY_TOKEN"):
        build_notifier(settings)


def test_bearer_auth_sends_no_basic_credentials(receiver: Any) -> None:
    seen, url = receiver
    HttpSmsNotifier(url, token="user:pw").send_sms(to="+1", text="x", reference="r")
    assert [m["authorization"] for m in seen] == ["Bearer user:pw"]
