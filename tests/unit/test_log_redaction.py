"""The redaction step on its own; test_observability.py scans the logs of real requests."""

import pytest

from gateway.observability.logging import mask, redact, redact_text


def test_secret_keys_are_removed_and_account_keys_masked() -> None:
    event = redact(
        None,
        "info",
        {
            "event": "x",
            "client_secret": "wgs_abc",
            "password": "p",
            "otp": "123456",
            "account_number": "6222021234567890",
            "mobile": "+8613800138000",
            "nested": {"Authorization": "Bearer abc.def.ghi", "items": [{"pin": "1234"}]},
            "partner_id": "ptn_01",
            "status": 200,
        },
    )
    assert event["client_secret"] == "[REDACTED]"
    assert event["password"] == "[REDACTED]"
    assert event["otp"] == "[REDACTED]"
    assert event["account_number"] == "****7890"
    assert event["mobile"] == "****8000"
    assert event["nested"]["Authorization"] == "[REDACTED]"
    assert event["nested"]["items"][0]["pin"] == "[REDACTED]"
    assert event["partner_id"] == "ptn_01" and event["status"] == 200


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("debiting 6222021234567890 now", "6222021234567890"),
        ("phone +86 138 0013 8000", "138 0013 8000"),
        ("iban DE89370400440532013000 here", "DE89370400440532013000"),
        ("header Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln", "eyJhbGci"),
        ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("client wgs_3q2+7w-abcdefghijk", "abcdefghijk"),
        ("Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ],
)
def test_patterns_mask_values_inside_free_text(text: str, leaked: str) -> None:
    assert leaked not in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "transfer tr_01j9z3m6r1x8y0v4t2c5n7q9w1 took 12.5 ms at 2026-11-23T16:35:23Z",
        "created '2026-11-23 16:57:19.663718'",
    ],
)
def test_ordinary_text_and_dates_survive(text: str) -> None:
    assert redact_text(text) == text


def test_mask_keeps_only_the_last_four() -> None:
    assert mask("6222021234567890") == "****7890"
    assert mask("123") == "****"
