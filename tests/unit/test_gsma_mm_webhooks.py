"""adapters/providers/gsma_mm/webhooks.py: the callback verifier (one reason per failed check)
and the parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from adapters.base import WebhookVerificationError
from adapters.providers.gsma_mm import webhooks

NOW = datetime(2026, 3, 2, 10, 15, 30, tzinfo=UTC)
KEY = "callback-key"
CORRELATION = "01935331-d0d8-0f51-e06c-9a130b53dd3c"
TOLERANCE = timedelta(minutes=5)
BODY = json.dumps(
    {
        "transactionStatus": "completed",
        "transactionReference": "MM1",
        "requestingOrganisationTransactionReference": "po_01jd9k3m6r1x8y0v4t2c5n7q9w",
    }
).encode()


def valid(body: bytes = BODY, **changes: Any) -> dict[str, str]:
    headers = webhooks.callback_headers(body, correlation_id=CORRELATION, at=NOW, api_key=KEY)
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers


def verify(
    headers: dict[str, str], body: bytes = BODY, method: str = "PUT", key: str | None = KEY
) -> Any:
    return webhooks.verify(method, headers, body, api_key=key, now=NOW, tolerance=TOLERANCE)


def test_the_helper_produces_headers_that_verify() -> None:
    assert verify(valid())["transactionStatus"] == "completed"
    lower = {name.lower(): value for name, value in valid().items()}
    assert verify(lower)  # header names are case-insensitive


@pytest.mark.parametrize(
    ("headers", "body", "method", "reason"),
    [
        (valid(), BODY, "POST", "method_not_allowed"),
        (valid(X_API_Key=None), BODY, "PUT", "missing_api_key"),
        (valid(X_API_Key="guessed"), BODY, "PUT", "api_key_mismatch"),
        (valid(X_CorrelationID=None), BODY, "PUT", "missing_correlation_id"),
        (valid(X_CorrelationID="po_01jd9k3m6r1x8y0v"), BODY, "PUT", "malformed_correlation_id"),
        (valid(X_Date="yesterday"), BODY, "PUT", "malformed_date"),
        (valid(X_Date="2026-03-02T10:05:00Z"), BODY, "PUT", "stale_date"),
        (valid(X_Date="2026-03-02T10:26:00Z"), BODY, "PUT", "stale_date"),
        (valid(X_Content_Hash="0" * 64), BODY, "PUT", "content_hash_mismatch"),
        (valid(b"not json"), b"not json", "PUT", "malformed_body"),
        (valid(b"[1]"), b"[1]", "PUT", "malformed_body"),
        (valid(b'{"hello": 1}'), b'{"hello": 1}', "PUT", "malformed_body"),
        (valid(b" " * 70_000), b" " * 70_000, "PUT", "body_too_large"),
    ],
)  # fmt: skip
def test_each_failed_check_has_its_reason(
    headers: dict[str, str], body: bytes, method: str, reason: str
) -> None:
    with pytest.raises(WebhookVerificationError) as raised:
        verify(headers, body, method)
    assert raised.value.reason == reason
    assert raised.value.status == 401


def test_a_changed_body_breaks_the_content_hash() -> None:
    tampered = BODY.replace(b"completed", b"failed   ")
    with pytest.raises(WebhookVerificationError, match="content_hash_mismatch"):
        verify(valid(), tampered)


def test_without_a_configured_key_the_key_is_not_required() -> None:
    assert verify(valid(X_API_Key=None), key=None)


def test_date_and_hash_are_optional_and_http_dates_are_understood() -> None:
    assert verify(valid(X_Date=None, X_Content_Hash=None))
    assert verify(valid(X_Date=format_datetime(NOW, usegmt=True)))


def test_parse_gives_a_hint_with_a_stable_event_id() -> None:
    headers = valid()
    note = webhooks.parse(headers, BODY, verify(headers))
    again = webhooks.parse(headers, BODY, verify(headers))
    other_body = BODY.replace(b"MM1", b"MM2")
    other = webhooks.parse(valid(other_body), other_body, verify(valid(other_body), other_body))

    assert note.event_id == again.event_id != other.event_id
    assert note.event_id.startswith(CORRELATION)
    assert note.authoritative is False
    assert (note.reference, note.transaction_reference, note.idempotency_key) == (
        "po_01jd9k3m6r1x8y0v4t2c5n7q9w",
        "MM1",
        CORRELATION,
    )
    assert note.result is not None and note.result.state == "succeeded"


def test_an_unknown_status_in_a_hint_is_not_a_verification_failure() -> None:
    body = b'{"transactionStatus": "onhold"}'
    note = webhooks.parse(valid(body), body, verify(valid(body), body))
    assert note.result is None  # the status query decides
