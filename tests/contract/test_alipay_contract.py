"""The Alipay adapter against recorded exchanges (`contracts/providers/alipay/`).

`responses` answers each recorded exchange only when the adapter's form matches it exactly:
every public parameter, the JSON `biz_content` and the RSA2 `sign` (the clock is pinned and
PKCS#1 v1.5 signatures are deterministic). Each request's `sign` is also verified with the
test application's *public* key over the sorted parameters. Answers are the recorded text,
byte for byte, signed over the exact bytes of their `<method>_response` value (written with
Alipay's spacing, so a verifier that re-serialized would fail). Every contract file is used.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from responses import matchers
from responses.registries import OrderedRegistry

from adapters.base import (
    AccountIdentifier,
    PayoutRequest,
    ProviderOutcomeUnknown,
    ProviderRefs,
    ProviderRejected,
    UnknownProviderStatus,
)
from adapters.providers.alipay import AlipayProvider, AlipaySettings
from adapters.providers.rsa_keys import load_public_key_file
from adapters.providers.settings import ProviderContext
from gateway import resources
from gateway.domain.clock import FrozenClock
from gateway.domain.money import Money

CONTRACTS = resources.contracts_dir() / "providers" / "alipay"
KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "alipay" / "test-keys"
NOW = datetime(2026, 3, 2, 10, 15, 30, tzinfo=UTC)
PAYOUT = "po_01jd9k3m6r1x8y0v4t2c5n7q9w"
OUT_BIZ_NO = "po01jd9k3m6r1x8y0v4t2c5n7q9w"
ORDER_ID = "20260302110070000006280000001234"
REFUND = "rf_01jd9k3m6r1x8y0v4t2c5n7q9w"
TRADE_NO = "2026030222001400000000000001"
CALLBACK = "https://gateway.bank.example/v1/providers/alipay/webhooks"


def contract(name: str) -> dict[str, Any]:
    return dict(json.loads((CONTRACTS / f"{name}.json").read_text(encoding="utf-8")))


def adapter(clock: FrozenClock | None = None, **overrides: Any) -> AlipayProvider:
    values: dict[str, Any] = {
        "base_url": "https://openapi.alipay.com/gateway.do",
        "app_id": "2021000100000001",
        "app_private_key_file": KEYS / "app_private_key.pem",
        "alipay_public_keys": [KEYS / "alipay_public_key.pem"],
        "clearing_account": "CNY:9100000000000203",
        "retry_attempts": 2,
        "retry_backoff_seconds": 0,
        "retry_backoff_max_seconds": 0,
    }
    values.update(overrides)
    context = ProviderContext(
        environment="test",
        callback_base_url="https://gateway.bank.example",
        clock=clock or FrozenClock(NOW),
    )
    return AlipayProvider(AlipaySettings(**values), context, sleep=lambda _seconds: None)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(
        registry=OrderedRegistry, assert_all_requests_are_fired=True
    ) as recorded:
        yield recorded


def form_matcher(expected: dict[str, str]) -> Any:
    """The request's form (as sent, URL-encoded bytes) equals `expected`, every parameter."""

    def match(request: Any) -> tuple[bool, str]:
        body = request.body
        text = body.decode() if isinstance(body, bytes) else str(body or "")
        pairs = parse_qsl(text, keep_blank_values=True)
        sent = dict(pairs)
        if len(sent) != len(pairs):
            return False, "a parameter is repeated"
        if sent != expected:
            differing = sorted(
                k for k in sent.keys() | expected.keys() if sent.get(k) != expected.get(k)
            )
            return False, f"form differs in {differing}"
        return True, ""

    return match


def replay(mock: responses.RequestsMock, name: str) -> None:
    for exchange in contract(name)["exchanges"]:
        request, response = exchange["request"], exchange["response"]
        mock.add(
            request["method"],
            request["url"],
            body=response["text"].encode("utf-8"),
            status=response["status"],
            content_type=response["headers"]["Content-Type"],
            match=[
                matchers.header_matcher(request["headers"]),
                form_matcher(request["form"]),
            ],
        )


def assert_signed_by_the_app(mock: responses.RequestsMock) -> None:
    """Every request's `sign` verifies with the application's public key over the sorted
    `k=v&…` of its other parameters (sign_type included, empty ones skipped)."""
    public = load_public_key_file(KEYS / "app_public_key.pem").key
    for call in mock.calls:
        body = call.request.body
        text = body.decode() if isinstance(body, bytes) else str(body)
        params = dict(parse_qsl(text, keep_blank_values=True))
        signed = "&".join(
            f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k]
        ).encode()
        public.verify(base64.b64decode(params["sign"]), signed, padding.PKCS1v15(), hashes.SHA256())
        assert params["sign_type"] == "RSA2" and params["app_id"] == "2021000100000001"


def payout_request(recipient: AccountIdentifier | None = None) -> PayoutRequest:
    return PayoutRequest(
        reference=PAYOUT,
        idempotency_key=OUT_BIZ_NO,
        amount=Money.parse("250.00", "CNY"),
        recipient=recipient or AccountIdentifier("alipay_user_id", "2088123412341234"),
        description="School fees",
        callback_url=CALLBACK,
    )


def test_the_out_biz_no_is_the_payout_id_in_letters_and_digits() -> None:
    assert adapter().idempotency_key(PAYOUT) == OUT_BIZ_NO


# --- transfers -----------------------------------------------------------------------------------


def test_transfer_success(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-success")
    result = adapter().payout(payout_request())
    assert (result.state, result.provider_status, result.transaction_reference) == (
        "succeeded",
        "SUCCESS",
        ORDER_ID,
    )
    assert_signed_by_the_app(mock)


def test_transfer_dealing(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-dealing")
    assert adapter().payout(payout_request()).state == "pending"


def test_transfer_to_a_logon_id_with_the_name(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-logon-id-with-name")
    recipient = AccountIdentifier("alipay_logon_id", "wangwei@example.com", "王伟")
    assert adapter().payout(payout_request(recipient)).state == "succeeded"
    assert_signed_by_the_app(mock)


def test_a_logon_id_without_the_name_is_refused_before_sending() -> None:
    with pytest.raises(ProviderRejected) as raised:
        adapter().payout(payout_request(AccountIdentifier("alipay_logon_id", "x@example.com")))
    assert raised.value.code == "recipient_name_required"


@pytest.mark.parametrize(
    ("name", "code", "provider_code"),
    [
        ("transfer-payee-not-exist", "recipient_not_found", "40004.PAYEE_NOT_EXIST"),
        (
            "transfer-balance-not-enough",
            "provider_insufficient_float",
            "40004.PAYER_BALANCE_NOT_ENOUGH",
        ),
    ],
)
def test_signed_refusals_fail_the_payout(
    mock: responses.RequestsMock, name: str, code: str, provider_code: str
) -> None:
    replay(mock, name)
    result = adapter().payout(payout_request())
    assert (result.state, result.failure_code, result.provider_code) == (
        "failed",
        code,
        provider_code,
    )


def test_an_unsigned_refusal_is_not_believed(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-refused-unsigned")
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        adapter().payout(payout_request())
    assert (raised.value.code, raised.value.provider_code) == (
        "provider_bad_signature",
        "40002.isv.invalid-signature",
    )


def test_service_unavailable_is_an_unknown_outcome(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-service-unavailable")
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        adapter().payout(payout_request())
    assert raised.value.provider_code == "20000.isp.unknow-error"


def test_an_unknown_sub_code_is_never_defaulted(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-unknown-sub-code")
    with pytest.raises(UnknownProviderStatus) as raised:
        adapter().payout(payout_request())
    assert raised.value.provider_code == "40004.BRAND_NEW_SUB_CODE"


def test_an_answer_signed_with_another_key_is_not_believed(
    mock: responses.RequestsMock,
) -> None:
    replay(mock, "transfer-success")
    stranger = adapter(alipay_public_keys=[KEYS / "app_public_key.pem"])
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        stranger.payout(payout_request())
    assert raised.value.code == "provider_bad_signature"


# --- status --------------------------------------------------------------------------------------


def test_query_success_with_the_amount(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-query-success")
    result = adapter().payout_status(ProviderRefs(OUT_BIZ_NO))
    assert (result.state, result.amount) == ("succeeded", Money.parse("250.00", "CNY"))
    assert_signed_by_the_app(mock)


def test_query_fail(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-query-fail")
    result = adapter().payout_status(ProviderRefs(OUT_BIZ_NO))
    assert (result.state, result.failure_code, result.provider_code) == (
        "failed",
        "recipient_not_permitted",
        "PAYEE_ACCOUNT_STATUS_ERROR",
    )


def test_query_not_exist(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-query-not-exist")
    assert adapter().payout_status(ProviderRefs(OUT_BIZ_NO)).state == "not_found"


def test_query_unknown_status(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-query-unknown-status")
    with pytest.raises(UnknownProviderStatus):
        adapter().payout_status(ProviderRefs(OUT_BIZ_NO))


# --- refunds -------------------------------------------------------------------------------------


def _refund() -> Any:
    return adapter().refund(
        ProviderRefs("", transaction_reference=TRADE_NO),
        Money.parse("25.00", "CNY"),
        reference=REFUND,
    )


def test_refund_success(mock: responses.RequestsMock) -> None:
    replay(mock, "refund-success")
    result = _refund()
    assert (result.state, result.amount) == ("succeeded", Money.parse("25.00", "CNY"))
    assert_signed_by_the_app(mock)


def test_a_repeated_refund_is_confirmed_by_the_query(mock: responses.RequestsMock) -> None:
    replay(mock, "refund-repeated")
    result = _refund()
    assert (result.state, result.provider_status) == ("succeeded", "REFUND_SUCCESS")


def test_refund_of_an_unknown_trade(mock: responses.RequestsMock) -> None:
    replay(mock, "refund-trade-not-exist")
    result = _refund()
    assert (result.state, result.failure_code) == ("failed", "payment_not_found")


def test_refund_query_without_data_is_not_found(mock: responses.RequestsMock) -> None:
    replay(mock, "refund-query-not-found")
    refs = ProviderRefs("", transaction_reference=TRADE_NO)
    assert adapter().refund_status(refs, reference=REFUND).state == "not_found"


# --- notifications -------------------------------------------------------------------------------


def _notification(name: str) -> tuple[dict[str, str], bytes]:
    request = contract(name)["request"]
    return dict(request["headers"]), request["body"].encode()


def test_transfer_notification_is_verified_and_authoritative() -> None:
    headers, body = _notification("notification-transfer-changed")
    note = adapter().verify_and_parse_webhook("POST", headers, body)
    assert (note.kind, note.idempotency_key, note.transaction_reference) == (
        "payout",
        OUT_BIZ_NO,
        ORDER_ID,
    )
    assert note.authoritative and note.result is not None
    assert (note.result.state, note.result.amount) == ("succeeded", Money.parse("250.00", "CNY"))
    assert note.event_id == "2026030200222181533000000000000001"


def test_refund_notification_is_recorded_not_applied() -> None:
    headers, body = _notification("notification-refund")
    note = adapter().verify_and_parse_webhook("POST", headers, body)
    assert (note.kind, note.idempotency_key) == ("refund", REFUND)


def test_another_apps_notification_is_refused() -> None:
    from adapters.base import WebhookVerificationError

    headers, body = _notification("notification-transfer-changed")
    with pytest.raises(WebhookVerificationError) as raised:
        adapter(app_id="2021000199999999").verify_and_parse_webhook("POST", headers, body)
    assert raised.value.reason == "app_id_mismatch"


def test_notifications_are_held_to_their_signed_send_time() -> None:
    """The transfer notification is sent at its `utc_timestamp` (NOW + 123 ms), the refund's at
    its `notify_time` (18:16:00 Beijing time = NOW + 30 s): taken through Alipay's ~25 hours of
    retries, refused (401, `stale_timestamp`) when replayed later than the window, or when our
    clock is well behind the send time."""
    from adapters.base import WebhookVerificationError

    for name in ("notification-transfer-changed", "notification-refund"):
        headers, body = _notification(name)
        for later in (timedelta(0), timedelta(hours=25), timedelta(hours=47)):
            adapter(FrozenClock(NOW + later)).verify_and_parse_webhook("POST", headers, body)
        for when, overrides in (
            (NOW + timedelta(hours=48, minutes=1), {}),
            (NOW + timedelta(hours=2), {"notification_max_age_seconds": 3600}),
            (NOW - timedelta(minutes=10), {}),
        ):
            provider = adapter(FrozenClock(when), **overrides)
            with pytest.raises(WebhookVerificationError) as raised:
                provider.verify_and_parse_webhook("POST", headers, body)
            assert (raised.value.reason, raised.value.status) == ("stale_timestamp", 401)


def test_the_reply_is_what_alipay_expects() -> None:
    provider = adapter()
    taken = provider.webhook_reply(accepted=True, status=204, message="applied")
    assert taken is not None and (taken.status, taken.body) == (200, b"success")
    assert provider.webhook_reply(accepted=False, status=401, message="wrong_key") is None


def test_every_recorded_contract_is_exercised() -> None:
    recorded = {path.stem for path in CONTRACTS.glob("*.json")}
    source = Path(__file__).read_text()
    unused = sorted(name for name in recorded if f'"{name}"' not in source)
    assert recorded, "no recorded contracts"
    assert unused == [], f"contracts no test uses: {unused}"


# --- certificate mode (公钥证书) ---------------------------------------------------------------

CERTS = CONTRACTS / "certificates"
APP_CERT_SN = "f24850ea77c80a72ac251eefa6d22b84"
ALIPAY_ROOT_CERT_SN = "687b59193f3f462dd5336e5abf83c5d8_02941eef3187dddf3d3b83462e1dfcf6"


def certificate_adapter() -> AlipayProvider:
    """Alipay's real root chain, and test certificates for the test keys."""
    return adapter(
        alipay_public_keys=[],
        signing_mode="certificate",
        app_cert_file=CERTS / "appCertPublicKey_2021000100000001.crt",
        alipay_root_cert_file=CERTS / "alipayRootCert.crt",
        alipay_certs=[CERTS / "alipayCertPublicKey_RSA2.crt"],
    )


def test_certificate_mode_transfer_success(mock: responses.RequestsMock) -> None:
    """The form carries both SNs (matched exactly, signed with the rest); the answer is
    verified with the certificate its alipay_cert_sn names."""
    replay(mock, "transfer-success-certificate-mode")
    result = certificate_adapter().payout(payout_request())
    assert (result.state, result.transaction_reference) == ("succeeded", ORDER_ID)
    assert_signed_by_the_app(mock)
    sent = dict(parse_qsl(str(mock.calls[0].request.body)))
    assert (sent["app_cert_sn"], sent["alipay_root_cert_sn"]) == (APP_CERT_SN, ALIPAY_ROOT_CERT_SN)


def test_certificate_mode_answer_under_an_unknown_cert_sn_is_not_believed(
    mock: responses.RequestsMock,
) -> None:
    replay(mock, "transfer-certificate-mode-unknown-cert-sn")
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        certificate_adapter().payout(payout_request())
    assert raised.value.code == "provider_bad_signature"


def test_a_public_key_request_to_a_certificate_app_is_refused_unsigned(
    mock: responses.RequestsMock,
) -> None:
    replay(mock, "transfer-missing-app-cert-sn")
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        adapter().payout(payout_request())
    assert (raised.value.code, raised.value.provider_code) == (
        "provider_bad_signature",
        "40002.isv.missing-app-cert-sn",
    )


# --- Alipay's own sandbox (opt-in) ---------------------------------------------------------------

LIVE = {name: os.environ.get(f"GATEWAY_TEST_ALIPAY_{name.upper()}", "") for name in (
    "base_url", "app_id", "app_private_key_file", "alipay_public_keys", "user_id",
    "signing_mode", "app_cert_file", "alipay_root_cert_file", "alipay_certs")}  # fmt: skip
needs_live = pytest.mark.skipif(
    not all(LIVE[name] for name in ("app_id", "app_private_key_file"))
    or not (LIVE["alipay_public_keys"] or LIVE["alipay_certs"]),
    reason="set GATEWAY_TEST_ALIPAY_APP_ID, _APP_PRIVATE_KEY_FILE, _ALIPAY_PUBLIC_KEYS (or, in "
    "certificate mode, _SIGNING_MODE=certificate, _APP_CERT_FILE, _ALIPAY_ROOT_CERT_FILE, "
    "_ALIPAY_CERTS) and _BASE_URL (e.g. https://openapi-sandbox.dl.alipaydev.com/gateway.do) to "
    "run against Alipay",
)


@pytest.mark.sandbox
@needs_live
def test_live_query_of_an_unknown_order_is_not_found() -> None:
    from gateway.domain.clock import SystemClock

    values = {k: v for k, v in LIVE.items() if v and k != "user_id"}
    values.setdefault("base_url", "https://openapi-sandbox.dl.alipaydev.com/gateway.do")
    provider = AlipayProvider(
        AlipaySettings(**values, clearing_account="CNY:9100000000000203"),
        ProviderContext("test", "https://gateway.bank.example", SystemClock()),
    )
    assert provider.payout_status(ProviderRefs("po00000000000000000000000000")).state == "not_found"
