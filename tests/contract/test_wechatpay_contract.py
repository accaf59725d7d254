"""The WeChat Pay adapter against recorded exchanges (`contracts/providers/wechatpay/`).

Each contract lists HTTP exchanges; `responses` answers them in order and only when the
adapter's request matches the recording: URL, the exact `Authorization` header (the clock and
the nonces are pinned, and RSA PKCS#1 v1.5 signatures are deterministic) and the JSON body.
Each request's signature is also verified with the test merchant's *public* key, over the
documented message, and each answer is signed with the test platform keys the adapter trusts.
Notification contracts are fed to the adapter's verifier. Every contract file is used.

(`tests/contract/make_cn_contracts.py` wrote the files from the documentation and the test
keys; `test_live_sandbox_*` run against WeChat Pay's own environment only with credentials.)
"""

from __future__ import annotations

import base64
import itertools
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    ProviderUnavailable,
    UnknownProviderStatus,
)
from adapters.providers.rsa_keys import load_public_key_file
from adapters.providers.settings import ProviderContext
from adapters.providers.wechatpay import WechatPayProvider, WechatPaySettings
from adapters.providers.wechatpay.signing import parse_authorization
from gateway import resources
from gateway.domain.clock import FrozenClock
from gateway.domain.money import Money

CONTRACTS = resources.contracts_dir() / "providers" / "wechatpay"
KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "wechatpay" / "test-keys"
NOW = datetime(2026, 3, 2, 10, 15, 30, tzinfo=UTC)
PAYOUT = "po_01jd9k3m6r1x8y0v4t2c5n7q9w"
OUT_BILL_NO = "po01jd9k3m6r1x8y0v4t2c5n7q9w"
TRANSFER_BILL_NO = "1330000071100999991182020050700019480001"
OPENID = "o-MYE42l80oelYMDE34nYD456Xoy"
REFUND = "rf_01jd9k3m6r1x8y0v4t2c5n7q9w"
TRANSACTION_ID = "1217752501201407033233368018"
CALLBACK = "https://gateway.bank.example/v1/providers/wechatpay/webhooks"


def contract(name: str) -> dict[str, Any]:
    return dict(json.loads((CONTRACTS / f"{name}.json").read_text(encoding="utf-8")))


def settings(**overrides: Any) -> WechatPaySettings:
    values: dict[str, Any] = {
        "base_url": "https://api.mch.weixin.qq.com",
        "mchid": "1900000001",
        "appid": "wxd678efh567hg6787",
        "merchant_serial_no": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        "merchant_private_key_file": KEYS / "merchant_private_key.pem",
        "apiv3_key": "contractAPIv3key0wallet0gateway0",
        "platform_keys": [
            f"PUB_KEY_ID_0114232134912410000000000000={KEYS}/"
            "PUB_KEY_ID_0114232134912410000000000000.pem",
            str(KEYS / "platform_cert.pem"),
        ],
        "transfer_scene_id": "1005",
        "transfer_scene_report_infos": [
            {"info_type": "岗位类型", "info_content": "外卖员"},
            {"info_type": "报酬说明", "info_content": "3月份配送费"},
        ],
        "user_recv_perception": "劳务报酬",
        "clearing_account": "CNY:9100000000000202",
        "retry_attempts": 2,
        "retry_backoff_seconds": 0,
        "retry_backoff_max_seconds": 0,
    }
    values.update(overrides)
    return WechatPaySettings(**values)


def adapter(**overrides: Any) -> WechatPayProvider:
    nonces = (f"N{n:07d}" for n in itertools.count(1))
    context = ProviderContext(
        environment="test",
        callback_base_url="https://gateway.bank.example",
        clock=FrozenClock(NOW),
    )
    return WechatPayProvider(
        settings(**overrides), context, sleep=lambda _seconds: None, nonce=lambda: next(nonces)
    )


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(
        registry=OrderedRegistry, assert_all_requests_are_fired=True
    ) as recorded:
        yield recorded


def replay(mock: responses.RequestsMock, name: str) -> None:
    """Register a contract's exchanges, each answered only if the request matches it."""
    for exchange in contract(name)["exchanges"]:
        request, response = exchange["request"], exchange["response"]
        match = [matchers.header_matcher(request["headers"])]
        if "body" in request:
            match.append(matchers.json_params_matcher(request["body"]))
        body = response["body"]
        mock.add(
            request["method"],
            request["url"],
            body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            if body is not None
            else b"",
            status=response["status"],
            headers={k: v for k, v in response["headers"].items() if k != "Content-Type"},
            content_type=response["headers"].get("Content-Type", "application/json"),
            match=match,
        )


def assert_signed_by_the_merchant(mock: responses.RequestsMock) -> None:
    """Every request carries a signature the merchant's public key verifies over
    METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n (the bytes actually sent)."""
    public = load_public_key_file(KEYS / "merchant_public_key.pem").key
    for call in mock.calls:
        request = call.request
        fields = parse_authorization(request.headers["Authorization"])
        assert fields["mchid"] == "1900000001"
        assert fields["serial_no"] == "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
        assert fields["timestamp"] == str(int(NOW.timestamp()))
        url = request.path_url
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        message = (
            f"{request.method}\n{url}\n{fields['timestamp']}\n{fields['nonce_str']}\n".encode()
            + body
            + b"\n"
        )
        public.verify(
            base64.b64decode(fields["signature"]), message, padding.PKCS1v15(), hashes.SHA256()
        )


def payout_request(amount: str = "250.00", name: str | None = None) -> PayoutRequest:
    return PayoutRequest(
        reference=PAYOUT,
        idempotency_key=OUT_BILL_NO,
        amount=Money.parse(amount, "CNY"),
        recipient=AccountIdentifier("openid", OPENID, name),
        description="3月份配送费",
        callback_url=CALLBACK,
    )


def test_the_out_bill_no_is_the_payout_id_in_letters_and_digits() -> None:
    assert adapter().idempotency_key(PAYOUT) == OUT_BILL_NO


# --- transfers -----------------------------------------------------------------------------------


def test_transfer_accepted(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-accepted")
    result = adapter().payout(payout_request())
    assert (result.state, result.provider_status) == ("pending", "ACCEPTED")
    assert (result.request_id, result.transaction_reference) == (OUT_BILL_NO, TRANSFER_BILL_NO)
    assert_signed_by_the_merchant(mock)


def test_transfer_waiting_for_the_user(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-wait-user-confirm")
    result = adapter().payout(payout_request())
    assert (result.state, result.provider_status) == ("pending", "WAIT_USER_CONFIRM")


def test_an_answer_signed_with_a_legacy_certificate_verifies(
    mock: responses.RequestsMock,
) -> None:
    replay(mock, "transfer-success-legacy-certificate")
    assert adapter().payout(payout_request()).state == "succeeded"


def test_a_signed_refusal_fails_the_payout(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-rejected-not-enough")
    result = adapter().payout(payout_request())
    assert (result.state, result.failure_code, result.provider_code) == (
        "failed",
        "provider_insufficient_float",
        "403.NOT_ENOUGH",
    )


def test_an_unsigned_refusal_is_not_believed(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-rejected-unsigned")
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        adapter().payout(payout_request())
    assert raised.value.code == "provider_bad_signature"


def test_a_system_error_is_retried_under_the_same_out_bill_no(
    mock: responses.RequestsMock,
) -> None:
    replay(mock, "transfer-system-error-then-accepted")
    assert adapter().payout(payout_request()).state == "pending"
    sent = [json.loads(call.request.body)["out_bill_no"] for call in mock.calls]
    assert sent == [OUT_BILL_NO, OUT_BILL_NO]
    nonces = [
        parse_authorization(c.request.headers["Authorization"])["nonce_str"] for c in mock.calls
    ]
    assert len(set(nonces)) == 2  # each attempt signed afresh
    assert_signed_by_the_merchant(mock)


def test_frequency_limited_is_unavailable(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-frequency-limited")
    with pytest.raises(ProviderUnavailable) as raised:
        adapter().payout(payout_request())
    assert (raised.value.code, raised.value.provider_code) == (
        "provider_rate_limited",
        "429.FREQUENCY_LIMITED",
    )


def test_an_unknown_error_code_is_never_defaulted(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-unknown-code")
    with pytest.raises(UnknownProviderStatus) as raised:
        adapter().payout(payout_request())
    assert raised.value.provider_code == "400.BRAND_NEW_CODE"


def test_an_answer_signed_by_another_key_is_not_believed(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-bad-signature")
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        adapter().payout(payout_request())
    assert raised.value.code == "provider_bad_signature"


def test_a_large_transfer_sends_the_name_encrypted_to_the_platform_key(
    mock: responses.RequestsMock,
) -> None:
    """user_name is RSA-OAEP (random): the body is matched without it, the ciphertext is
    decrypted with the platform key, and Wechatpay-Serial names that key."""
    exchange = contract("transfer-accepted")["exchanges"][0]
    body = {**exchange["request"]["body"], "transfer_amount": 250000}
    mock.add(
        "POST",
        exchange["request"]["url"],
        body=b"",
        status=599,  # never reached: the matcher below decides
        match=[matchers.json_params_matcher(body, strict_match=False)],
    )
    with pytest.raises(ProviderOutcomeUnknown):
        adapter().payout(payout_request("2500.00", name="王伟"))
    sent = mock.calls[0].request
    assert sent.headers["Wechatpay-Serial"] == "PUB_KEY_ID_0114232134912410000000000000"
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(
        (KEYS / "wechatpay_public_key_private.pem").read_bytes(), password=None
    )
    sha1 = hashes.SHA1()  # noqa: S303 - the scheme WeChat Pay specifies
    oaep = padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None)
    name = private.decrypt(base64.b64decode(json.loads(sent.body)["user_name"]), oaep)  # type: ignore[union-attr]
    assert name.decode() == "王伟"
    assert_signed_by_the_merchant(mock)


def test_a_large_transfer_without_the_name_is_refused_before_sending() -> None:
    with pytest.raises(ProviderRejected) as raised:
        adapter().payout(payout_request("2000.00"))
    assert raised.value.code == "recipient_name_required"


# --- status --------------------------------------------------------------------------------------


def test_status_success_carries_the_amount(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-status-success")
    result = adapter().payout_status(ProviderRefs(OUT_BILL_NO))
    assert (result.state, result.amount) == ("succeeded", Money.parse("250.00", "CNY"))
    assert_signed_by_the_merchant(mock)


def test_status_failed_with_its_reason(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-status-failed")
    result = adapter().payout_status(ProviderRefs(OUT_BILL_NO))
    assert (result.state, result.failure_code, result.provider_code) == (
        "failed",
        "recipient_not_permitted",
        "ACCOUNT_FROZEN",
    )


def test_status_not_found(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-status-not-found")
    assert adapter().payout_status(ProviderRefs(OUT_BILL_NO)).state == "not_found"


def test_an_unknown_state_is_never_defaulted(mock: responses.RequestsMock) -> None:
    replay(mock, "transfer-status-unknown-state")
    with pytest.raises(UnknownProviderStatus) as raised:
        adapter().payout_status(ProviderRefs(OUT_BILL_NO))
    assert raised.value.provider_code == "MYSTERY"


# --- refunds -------------------------------------------------------------------------------------


def test_refund_reads_the_payment_total_then_refunds(mock: responses.RequestsMock) -> None:
    replay(mock, "refund-processing")
    result = adapter().refund(
        ProviderRefs("", transaction_reference=TRANSACTION_ID),
        Money.parse("25.00", "CNY"),
        reference=REFUND,
    )
    assert (result.state, result.request_id, result.amount) == (
        "pending",
        REFUND,
        Money.parse("25.00", "CNY"),
    )
    assert_signed_by_the_merchant(mock)


def test_refund_of_an_unknown_payment(mock: responses.RequestsMock) -> None:
    replay(mock, "refund-payment-not-found")
    with pytest.raises(ProviderRejected) as raised:
        adapter().refund(
            ProviderRefs("", transaction_reference=TRANSACTION_ID),
            Money.parse("25.00", "CNY"),
            reference=REFUND,
        )
    assert raised.value.code == "payment_not_found"


def test_refund_status(mock: responses.RequestsMock) -> None:
    replay(mock, "refund-status-success")
    assert adapter().refund_status(ProviderRefs(""), reference=REFUND).state == "succeeded"


# --- notifications -------------------------------------------------------------------------------


def _notification(name: str) -> tuple[dict[str, str], bytes]:
    request = contract(name)["request"]
    body = json.dumps(request["body"], ensure_ascii=False, separators=(",", ":")).encode()
    return dict(request["headers"]), body


def test_transfer_notification_is_verified_decrypted_and_authoritative() -> None:
    headers, body = _notification("notification-transfer-success")
    note = adapter().verify_and_parse_webhook("POST", headers, body)
    assert (note.kind, note.idempotency_key, note.transaction_reference) == (
        "payout",
        OUT_BILL_NO,
        TRANSFER_BILL_NO,
    )
    assert note.authoritative and note.result is not None
    assert (note.result.state, note.result.amount) == ("succeeded", Money.parse("250.00", "CNY"))
    assert note.event_id == "EV-2026030218153300000000000000001"


def test_failed_transfer_notification() -> None:
    headers, body = _notification("notification-transfer-failed")
    note = adapter().verify_and_parse_webhook("POST", headers, body)
    assert note.result is not None
    assert (note.result.state, note.result.failure_code) == ("failed", "recipient_name_mismatch")


def test_refund_notification_is_recorded_not_applied() -> None:
    headers, body = _notification("notification-refund-success")
    note = adapter().verify_and_parse_webhook("POST", headers, body)
    assert (note.kind, note.idempotency_key) == ("refund", REFUND)
    assert note.result is not None and note.result.state == "succeeded"


def test_the_reply_is_what_wechat_pay_expects() -> None:
    provider = adapter()
    assert provider.webhook_reply(accepted=True, status=204, message="applied").status == 204
    refused = provider.webhook_reply(accepted=False, status=401, message="wrong_key")
    assert refused is not None
    assert (refused.status, json.loads(refused.body)) == (
        401,
        {"code": "FAIL", "message": "wrong_key"},
    )


def test_every_recorded_contract_is_exercised() -> None:
    recorded = {path.stem for path in CONTRACTS.glob("*.json")}
    source = Path(__file__).read_text()
    unused = sorted(name for name in recorded if f'"{name}"' not in source)
    assert recorded, "no recorded contracts"
    assert unused == [], f"contracts no test uses: {unused}"


# --- WeChat Pay itself (opt-in) ------------------------------------------------------------------

LIVE = {name: os.environ.get(f"GATEWAY_TEST_WECHATPAY_{name.upper()}", "") for name in (
    "base_url", "mchid", "appid", "merchant_serial_no", "merchant_private_key_file",
    "apiv3_key", "platform_keys", "openid", "transfer_scene_id")}  # fmt: skip
needs_live = pytest.mark.skipif(
    not all(LIVE[name] for name in ("mchid", "merchant_private_key_file", "platform_keys")),
    reason="set GATEWAY_TEST_WECHATPAY_MCHID, _MERCHANT_PRIVATE_KEY_FILE, _PLATFORM_KEYS (and "
    "_APPID, _MERCHANT_SERIAL_NO, _APIV3_KEY, _OPENID) to run against WeChat Pay",
)


@pytest.mark.sandbox
@needs_live
def test_live_status_query_of_an_unknown_bill_is_not_found() -> None:
    from gateway.domain.clock import SystemClock

    values = {k: v for k, v in LIVE.items() if v and k not in ("openid",)}
    values.setdefault("base_url", "https://api.mch.weixin.qq.com")
    provider = WechatPayProvider(
        WechatPaySettings(**values, clearing_account="CNY:9100000000000202"),
        ProviderContext("test", "https://gateway.bank.example", SystemClock()),
    )
    result = provider.payout_status(ProviderRefs("po00000000000000000000000000"))
    assert result.state == "not_found"
