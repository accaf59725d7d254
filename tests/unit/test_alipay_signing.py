"""Alipay RSA2 signatures against the REAL published vectors (tests/fixtures/alipay, from the
official alipay-sdk-nodejs-all test suite; see PROVENANCE.md), then our own round trips:
request signing, answers over their exact bytes, notifications with and without sign_type,
the notification's send-time window, and each refusal with its own reason."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from adapters.base import WebhookVerificationError
from adapters.providers.alipay import signing, webhooks
from adapters.providers.rsa_keys import (
    KeyRing,
    PublicKey,
    load_private_key,
    load_public_key_file,
)
from tests.fixtures import assert_provenance

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alipay"
KEYS = FIXTURES / "test-keys"
NOTIFY = json.loads((FIXTURES / "notify-v1-trade-status-sync.json").read_text())
NOTIFY_KEY = load_public_key_file(FIXTURES / "notify-v1-inline-public-key.pem")
RESPONSE = (FIXTURES / "response-file-upload.json").read_bytes()
RESPONSE_KEY = load_public_key_file(FIXTURES / "alipay-public-key.pem")
OTHER_ALIPAY_KEY = load_public_key_file(FIXTURES / "alipay-notify-sign-public-key-v2.pem")
# The real notification's notify_time, 2019-08-15 15:56:25 Beijing time (UTC+8).
NOTIFY_SENT = datetime(2019, 8, 15, 7, 56, 25, tzinfo=UTC)
RECEIVED = NOTIFY_SENT + timedelta(minutes=3)  # an injected clock just after it was sent
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


def test_the_fixtures_are_the_published_bytes() -> None:
    """Every fixture is byte-identical to the published vector (the digests in PROVENANCE.md)."""
    assert_provenance(FIXTURES)


# --- the real notification -----------------------------------------------------------------------


def test_the_genuine_notification_verifies() -> None:
    signing.verify_notification(NOTIFY, [NOTIFY_KEY])


def test_it_is_signed_without_sign_type_so_both_variants_are_needed() -> None:
    """This (v1) notification's signature covers everything but sign AND sign_type: a
    verifier that only tried one variant would refuse it (or the message-service kind)."""
    raw = base64.b64decode(NOTIFY["sign"])
    without = signing.content(NOTIFY, exclude=("sign", "sign_type")).encode()
    with_type = signing.content(NOTIFY, exclude=("sign",)).encode()
    NOTIFY_KEY.key.verify(raw, without, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(signing.SignatureError) as raised:
        signing.check(NOTIFY["sign"], [with_type], [NOTIFY_KEY])
    assert raised.value.reason == "content_mismatch"
    assert "sign_type=RSA2" in with_type.decode() and "sign_type" not in without.decode()


def test_the_genuine_notification_arrives_as_a_form_and_verifies() -> None:
    body = urlencode(NOTIFY).encode()  # what Alipay POSTs (values URL-encoded on the wire)
    params = webhooks.verify(
        "POST",
        FORM,
        body,
        keys=KeyRing({"alipay": NOTIFY_KEY}),
        app_id="2019073166072302",
        now=RECEIVED,
    )
    assert params == NOTIFY
    note = webhooks.parse(params, body)
    # A payment notification: recorded and acknowledged, never applied to a payout.
    assert (note.event_id, note.kind, note.result) == (
        "2019081500222155624068450559358070",
        "payment",
        None,
    )


# --- the real notification's send time ------------------------------------------------------------


def _webhook_reason(body: bytes, now: datetime, keys: list[PublicKey] | None = None) -> str:
    ring = KeyRing({f"k{i}": key for i, key in enumerate(keys or [NOTIFY_KEY])})
    with pytest.raises(WebhookVerificationError) as raised:
        webhooks.verify("POST", FORM, body, keys=ring, app_id="2019073166072302", now=now)
    return raised.value.reason


def test_notify_time_is_beijing_time() -> None:
    assert webhooks.sent_at(NOTIFY) == NOTIFY_SENT
    assert signing.beijing_time(NOTIFY_SENT) == NOTIFY["notify_time"]


def test_the_genuine_notification_is_taken_within_its_window() -> None:
    body = urlencode(NOTIFY).encode()
    keys = KeyRing({"alipay": NOTIFY_KEY})
    # Alipay's last retry comes about 25 hours after the first send: still taken.
    for now in (NOTIFY_SENT, RECEIVED, NOTIFY_SENT + timedelta(hours=25), NOTIFY_SENT
                + webhooks.MAX_AGE, NOTIFY_SENT - webhooks.MAX_SKEW):  # fmt: skip
        assert webhooks.verify("POST", FORM, body, keys=keys, app_id=None, now=now) == NOTIFY


def test_the_genuine_notification_is_stale_on_the_real_clock() -> None:
    body = urlencode(NOTIFY).encode()
    assert _webhook_reason(body, datetime.now(UTC)) == "stale_timestamp"
    just_too_late = NOTIFY_SENT + webhooks.MAX_AGE + timedelta(seconds=1)
    assert _webhook_reason(body, just_too_late) == "stale_timestamp"


def test_a_notification_from_the_future_is_refused() -> None:
    """Our clock well behind the signed send time (or a send time far ahead of ours)."""
    body = urlencode(NOTIFY).encode()
    assert _webhook_reason(body, NOTIFY_SENT - timedelta(days=1)) == "stale_timestamp"
    just_too_early = NOTIFY_SENT - webhooks.MAX_SKEW - timedelta(seconds=1)
    assert _webhook_reason(body, just_too_early) == "stale_timestamp"


def test_a_changed_byte_or_wrong_key_keeps_its_reason_whatever_the_time() -> None:
    """The send time is believed only once the signature holds: a forgery is named as such."""
    changed = urlencode({**NOTIFY, "total_amount": "0.11"}).encode()
    genuine = urlencode(NOTIFY).encode()
    for now in (RECEIVED, datetime.now(UTC)):
        assert _webhook_reason(changed, now) == "content_mismatch"
        assert _webhook_reason(genuine, now, [OTHER_ALIPAY_KEY]) == "wrong_key"
    # Moving notify_time into the window breaks the signature: content_mismatch, not stale.
    fresh = signing.beijing_time(datetime.now(UTC))
    moved = urlencode({**NOTIFY, "notify_time": fresh}).encode()
    assert _webhook_reason(moved, datetime.now(UTC)) == "content_mismatch"


def _notify_reason(params: dict[str, str], keys: list[object] | None = None) -> str:
    with pytest.raises(signing.SignatureError) as raised:
        signing.verify_notification(params, keys or [NOTIFY_KEY])  # type: ignore[arg-type]
    return raised.value.reason


def test_a_changed_byte_in_the_notification_is_a_content_mismatch() -> None:
    assert _notify_reason({**NOTIFY, "total_amount": "0.11"}) == "content_mismatch"
    assert _notify_reason({**NOTIFY, "subject": NOTIFY["subject"] + " "}) == "content_mismatch"
    extra = {**NOTIFY, "refund_fee": "0.10"}  # an added parameter is covered too
    assert _notify_reason(extra) == "content_mismatch"


def test_the_notification_with_a_wrong_key_is_a_wrong_key() -> None:
    assert _notify_reason(NOTIFY, [OTHER_ALIPAY_KEY]) == "wrong_key"
    assert _notify_reason(NOTIFY, [RESPONSE_KEY]) == "wrong_key"


def test_rotation_any_configured_key_may_verify() -> None:
    signing.verify_notification(NOTIFY, [OTHER_ALIPAY_KEY, NOTIFY_KEY])


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sign": ""}, "missing_signature"),
        ({"sign_type": "RSA"}, "unsupported_sign_type"),
        ({"sign": "***"}, "malformed_signature"),
    ],
)
def test_malformed_notifications(changes: dict[str, str], reason: str) -> None:
    assert _notify_reason({**NOTIFY, **changes}) == reason


def test_notification_checks_have_distinct_reasons() -> None:
    good = urlencode(NOTIFY).encode()

    def reason(body: bytes = good, method: str = "POST", **changes: object) -> str:
        values: dict[str, object] = {
            "keys": KeyRing({"a": NOTIFY_KEY}),
            "app_id": None,
            "now": RECEIVED,
        }
        values.update(changes)
        with pytest.raises(WebhookVerificationError) as raised:
            webhooks.verify(method, {}, body, **values)  # type: ignore[arg-type]
        return raised.value.reason

    reasons = [
        reason(method="GET"),
        reason(body=b"\xff\xfe"),
        reason(body=good + b"&sign_type=RSA2"),  # a repeated parameter
        reason(body=good.replace(b"total_amount=0.10", b"total_amount=0.11")),
        reason(keys=KeyRing({"b": OTHER_ALIPAY_KEY})),
        reason(now=datetime.now(UTC)),
        reason(app_id="2021000100000001"),
    ]
    assert reasons == [
        "method_not_allowed",
        "malformed_body",
        "malformed_body",
        "content_mismatch",
        "wrong_key",
        "stale_timestamp",
        "app_id_mismatch",
    ]


# --- send times of our own signed notifications ------------------------------------------------


TEST_ALIPAY_KEY = load_private_key(KEYS / "alipay_private_key.pem")
TEST_ALIPAY_RING = KeyRing({"k": load_public_key_file(KEYS / "alipay_public_key.pem")})
NOW = datetime(2026, 3, 2, 10, 15, 30, tzinfo=UTC)
TRADE = {"notify_type": "trade_status_sync", "notify_id": "n1", "app_id": "2021000100000001"}
CHANGED = {"msg_method": "alipay.fund.trans.order.changed", "notify_id": "n2",
           "app_id": "2021000100000001", "version": "1.1", "biz_content": "{}"}  # fmt: skip


def _own_reason(params: dict[str, str], now: datetime = NOW) -> str:
    body = webhooks.notification(params, TEST_ALIPAY_KEY, now=NOW)
    with pytest.raises(WebhookVerificationError) as raised:
        webhooks.verify("POST", FORM, body, keys=TEST_ALIPAY_RING, app_id=None, now=now)
    return raised.value.reason


def test_a_message_service_notification_is_held_to_its_utc_timestamp() -> None:
    body = webhooks.notification(CHANGED, TEST_ALIPAY_KEY, now=NOW)
    params = webhooks.verify("POST", FORM, body, keys=TEST_ALIPAY_RING, app_id=None, now=NOW)
    assert "notify_time" not in params and params["utc_timestamp"] == "1772446530000"
    assert webhooks.sent_at(params) == NOW
    assert _own_reason(CHANGED, NOW + timedelta(hours=49)) == "stale_timestamp"
    assert _own_reason(CHANGED, NOW - timedelta(minutes=6)) == "stale_timestamp"


def test_a_trade_notification_is_held_to_its_notify_time() -> None:
    body = webhooks.notification(TRADE, TEST_ALIPAY_KEY, now=NOW)
    params = webhooks.verify("POST", FORM, body, keys=TEST_ALIPAY_RING, app_id=None, now=NOW)
    assert params["notify_time"] == "2026-03-02 18:15:30"  # Beijing time, not UTC
    assert _own_reason(TRADE, NOW + timedelta(hours=49)) == "stale_timestamp"
    # A sender that wrote UTC in notify_time would look 8 hours old: still inside the window,
    # so check the arithmetic directly.
    assert webhooks.sent_at({"notify_time": "2026-03-02 10:15:30"}) == NOW - timedelta(hours=8)


def test_a_notification_without_a_send_time_is_refused() -> None:
    """Alipay always sends notify_time or utc_timestamp: a signed body without either (or
    with it empty, which the signature skips) is refused with its own reason."""
    for params in (TRADE, CHANGED, {**TRADE, "notify_time": ""}, {**CHANGED, "utc_timestamp": ""}):
        values = {**params, "sign_type": signing.SIGN_TYPE}
        values["sign"] = signing.sign(TEST_ALIPAY_KEY, signing.content(values))
        with pytest.raises(WebhookVerificationError) as raised:
            webhooks.verify(
                "POST", FORM, urlencode(values).encode(), keys=TEST_ALIPAY_RING,
                app_id=None, now=NOW,
            )  # fmt: skip
        assert raised.value.reason == "missing_timestamp"


@pytest.mark.parametrize(
    "stamp",
    [
        {"notify_time": "2026-03-02T18:15:30"},
        {"notify_time": "2026-3-2 18:15:30"},
        {"notify_time": "2026-02-30 18:15:30"},
        {"notify_time": "2026-03-02 18:15:30.000"},
        {"notify_time": "1772446530"},
        {"utc_timestamp": "1772446530.123"},
        {"utc_timestamp": "-1772446530123"},
        {"utc_timestamp": "999999999999999"},
    ],
)
def test_an_unreadable_send_time_is_refused(stamp: dict[str, str]) -> None:
    assert _own_reason({**TRADE, **stamp}) == "malformed_timestamp"


# --- the real answer -----------------------------------------------------------------------------


def test_the_genuine_answer_verifies_over_the_exact_bytes_of_its_value() -> None:
    value = signing.response_value(RESPONSE, "alipay.open.file.upload")
    assert value.key == "alipay_open_file_upload_response"
    assert value.raw == (
        b'{"code":"10000","msg":"Success","file_id":"CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"}'
    )
    assert value.value["file_id"] == "CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"
    signing.verify_response(value, [RESPONSE_KEY])


def test_a_re_serialized_value_would_not_verify() -> None:
    """Why the exact bytes matter: the same object written with other spacing is not what
    Alipay signed."""
    value = signing.response_value(RESPONSE, "alipay.open.file.upload")
    respaced = json.dumps(value.value).encode()  # ", " and ": " separators
    assert respaced != value.raw
    with pytest.raises(signing.SignatureError) as raised:
        signing.check(value.sign or "", [respaced], [RESPONSE_KEY])
    assert raised.value.reason == "content_mismatch"


def test_spacing_outside_the_value_does_not_matter() -> None:
    spaced = RESPONSE.replace(
        b'{"alipay_open_file_upload_response":', b'{ "alipay_open_file_upload_response" :  '
    )
    value = signing.response_value(spaced, "alipay.open.file.upload")
    signing.verify_response(value, [RESPONSE_KEY])


def _response_reason(body: bytes, keys: list[object] | None = None) -> str:
    with pytest.raises(signing.SignatureError) as raised:
        signing.verify_response(
            signing.response_value(body, "alipay.open.file.upload"),
            keys or [RESPONSE_KEY],  # type: ignore[arg-type]
        )
    return raised.value.reason


def test_a_changed_byte_in_the_answer_is_a_content_mismatch() -> None:
    changed = RESPONSE.replace(b'"msg":"Success"', b'"msg":"Succesz"')
    assert _response_reason(changed) == "content_mismatch"


def test_the_answer_with_a_wrong_key_is_a_wrong_key() -> None:
    assert _response_reason(RESPONSE, [NOTIFY_KEY]) == "wrong_key"


def test_an_unsigned_answer_says_so() -> None:
    unsigned = b'{"alipay_open_file_upload_response":{"code":"40002","msg":"Invalid Arguments"}}'
    assert _response_reason(unsigned) == "missing_signature"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"alipay_open_file_upload_response":{"code":"10000"},"alipay_open_file_upload_response":{}}',
        b'{"other_response":{"code":"10000"}}',
        b'{"alipay_open_file_upload_response":[1]}',
        b'{"alipay_open_file_upload_response":{"code":"10000"}} trailing',
    ],
)
def test_unreadable_answers(body: bytes) -> None:
    with pytest.raises(signing.SignatureError) as raised:
        signing.response_value(body, "alipay.open.file.upload")
    assert raised.value.reason == "malformed_response"


def test_an_error_response_is_found_when_the_method_is_missing() -> None:
    body = (
        b'{"error_response":{"code":"40002","msg":"Invalid Arguments",'
        b'"sub_code":"isv.invalid-app-id"}}'
    )
    value = signing.response_value(body, "alipay.fund.trans.uni.transfer")
    assert (value.key, value.value["sub_code"], value.sign) == (
        "error_response",
        "isv.invalid-app-id",
        None,
    )


# --- our own requests ----------------------------------------------------------------------------


def test_request_signing_over_sorted_non_empty_parameters() -> None:
    params = {
        "app_id": "2021000100000001",
        "method": "alipay.fund.trans.uni.transfer",
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": "2026-03-02 18:15:30",
        "version": "1.0",
        "notify_url": "",
        "biz_content": '{"out_biz_no":"po01","trans_amount":"250.00"}',
    }
    assert signing.content(params) == (
        'app_id=2021000100000001&biz_content={"out_biz_no":"po01","trans_amount":"250.00"}'
        "&charset=utf-8&format=JSON&method=alipay.fund.trans.uni.transfer&sign_type=RSA2"
        "&timestamp=2026-03-02 18:15:30&version=1.0"
    )
    key = load_private_key(KEYS / "app_private_key.pem")
    sign = signing.sign_params(key, params)
    public = load_public_key_file(KEYS / "app_public_key.pem")
    signing.check(sign, [signing.content(params).encode()], [public])
    # `sign` itself is never part of what is signed.
    assert signing.content({**params, "sign": sign}) == signing.content(params)


def test_our_signed_answers_and_notifications_verify() -> None:
    key = load_private_key(KEYS / "alipay_private_key.pem")
    public = load_public_key_file(KEYS / "alipay_public_key.pem")
    text = signing.response_text(
        "alipay.fund.trans.uni.transfer", {"code": "10000", "msg": "Success", "status": "成功"}, key
    )
    value = signing.response_value(text, "alipay.fund.trans.uni.transfer")
    signing.verify_response(value, [public])
    for sign_type_signed in (False, True):
        body = webhooks.notification(
            {"notify_id": "n1", "app_id": "2021000100000001", "msg_method": "x"},
            key,
            sign_type_signed=sign_type_signed,
        )
        webhooks.verify(
            "POST",
            {},
            body,
            keys=KeyRing({"k": public}),
            app_id="2021000100000001",
            now=datetime.now(UTC),
        )


def test_bare_base64_public_keys_load() -> None:
    """The Alipay console shows the public key as bare base64, without PEM armour."""
    pem = (FIXTURES / "alipay-public-key.pem").read_text()
    bare = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    from adapters.providers.rsa_keys import load_public_key

    loaded = load_public_key(bare.encode(), source="console")
    signing.verify_response(signing.response_value(RESPONSE, "alipay.open.file.upload"), [loaded])
