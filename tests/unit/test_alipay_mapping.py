"""Alipay tables and transforms (adapters/providers/alipay/mapping.py), its settings and its
notification parsing: documented statuses and codes map somewhere definite, anything else
raises, yuan on the wire convert exactly to and from Money."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from adapters.base import (
    AccountIdentifier,
    ProviderOutcomeUnknown,
    ProviderRejected,
    UnknownProviderStatus,
    WebhookVerificationError,
)
from adapters.providers.alipay import mapping, webhooks
from adapters.providers.alipay.settings import AlipaySettings
from gateway.domain.money import Money


def order(status: object, **extra: Any) -> dict[str, Any]:
    return {"out_biz_no": "po01", "order_id": "2026", "status": status, **extra}


def test_every_documented_transfer_status_has_a_meaning() -> None:
    assert mapping.TRANSFER_STATUSES == {
        "SUCCESS": "succeeded",
        "DEALING": "pending",
        "INIT": "pending",
        "WAIT_PAY": "pending",
        "FAIL": "failed",
        "CLOSED": "failed",
        "REFUND": "failed",
    }
    for status, ours in mapping.TRANSFER_STATUSES.items():
        assert mapping.transfer_result(order(status)).state == ours


@pytest.mark.parametrize("status", ["success", "PAID", "", None])
def test_an_unknown_transfer_status_raises(status: object) -> None:
    with pytest.raises(UnknownProviderStatus):
        mapping.transfer_result(order(status))


def test_failures_carry_their_reason() -> None:
    failed = mapping.transfer_result(order("FAIL", error_code="PAYEE_NOT_EXIST"))
    assert (failed.failure_code, failed.provider_code) == ("recipient_not_found", "PAYEE_NOT_EXIST")
    returned = mapping.transfer_result(order("REFUND"))
    assert returned.failure_code == "provider_reversed"
    odd = mapping.transfer_result(order("FAIL", error_code="SOMETHING_NEW"))
    assert odd.failure_code == "provider_failed"


@pytest.mark.parametrize(
    ("wire", "minor"),
    [("250.00", 25000), ("0.10", 10), ("0.1", 10), ("1", 100), ("99999999.99", 9999999999)],
)
def test_yuan_are_read_exactly(wire: str, minor: int) -> None:
    assert mapping.parse_yuan(wire) == Money(minor, "CNY")


@pytest.mark.parametrize("wire", ["1.234", "abc", 1.5, None, "NaN"])
def test_amounts_that_are_not_yuan_raise(wire: object) -> None:
    with pytest.raises(UnknownProviderStatus):
        mapping.parse_yuan(wire)


def test_yuan_are_written_with_two_decimals() -> None:
    assert mapping.yuan(Money(10, "CNY")) == "0.10"
    assert mapping.yuan(Money.parse("250.00", "CNY")) == "250.00"
    with pytest.raises(ValueError, match="CNY"):
        mapping.yuan(Money.parse("1.00", "USD"))


def test_refund_query_results() -> None:
    found = mapping.refund_query_result(
        {"refund_status": "REFUND_SUCCESS", "refund_amount": "25.00", "out_request_no": "rf_1"}
    )
    assert (found.state, found.amount) == ("succeeded", Money.parse("25.00", "CNY"))
    assert mapping.refund_query_result({"out_request_no": "rf_1"}).state == "not_found"
    legacy = mapping.refund_query_result({"refund_amount": "25.00"})  # data alone: succeeded
    assert legacy.state == "succeeded"
    with pytest.raises(UnknownProviderStatus):
        mapping.refund_query_result({"refund_status": "REFUND_PENDING"})


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "outcome", "ours"),
    [
        ({"code": "40004", "sub_code": "PAYEE_NOT_EXIST"}, "rejected", "recipient_not_found"),
        ({"code": "40004", "sub_code": "PAYER_BALANCE_NOT_ENOUGH"}, "rejected",
         "provider_insufficient_float"),
        ({"code": "40004", "sub_code": "BALANCE_IS_NOT_ENOUGH"}, "rejected",
         "provider_insufficient_float"),
        ({"code": "40004", "sub_code": "PAYEE_USER_INFO_ERROR"}, "rejected",
         "recipient_name_mismatch"),
        ({"code": "40004", "sub_code": "SYSTEM_ERROR"}, "unknown", "provider_error"),
        ({"code": "40004", "sub_code": "ORDER_NOT_EXIST"}, "not_found", "not_found"),
        ({"code": "20000", "sub_code": "isp.unknow-error"}, "unknown", "provider_error"),
        ({"code": "40002", "sub_code": "isv.invalid-signature"}, "rejected",
         "provider_authentication_failed"),
        ({"code": "40002", "sub_code": "isv.missing-method"}, "rejected",
         "provider_integration_error"),
        ({"code": "40006", "sub_code": "isv.insufficient-isv-permissions"}, "rejected",
         "provider_declined"),
    ],
)  # fmt: skip
def test_documented_codes(answer: dict[str, str], outcome: str, ours: str) -> None:
    rule = mapping.error_rule(answer)
    assert (rule.outcome, rule.code) == (outcome, ours)


def test_every_business_sub_code_has_a_definite_outcome() -> None:
    for sub_code, rule in mapping.BUSINESS.items():
        answer = {"code": "40004", "sub_code": sub_code}
        assert mapping.error_rule(answer) is rule
        error = mapping.error_for(rule, answer)
        assert error.provider_code == f"40004.{sub_code}"
        if rule.outcome == "rejected":
            assert isinstance(error, ProviderRejected)
        else:
            assert isinstance(error, ProviderOutcomeUnknown)


@pytest.mark.parametrize(
    "answer", [{"code": "40004", "sub_code": "NEW_ONE"}, {"code": "50000"}, {}]
)
def test_unknown_codes_raise(answer: dict[str, str]) -> None:
    with pytest.raises(UnknownProviderStatus):
        mapping.error_rule(answer)


# --- requests ------------------------------------------------------------------------------------


def test_payee_by_identity_type() -> None:
    assert mapping.payee(AccountIdentifier("alipay_user_id", "2088102000000001")) == {
        "identity": "2088102000000001",
        "identity_type": "ALIPAY_USER_ID",
    }
    assert mapping.payee(AccountIdentifier("alipay_logon_id", "a@b.c", "王伟"))["name"] == "王伟"
    with pytest.raises(ValueError, match="not an Alipay identity type"):
        mapping.payee(AccountIdentifier("msisdn", "+86"))


def test_the_transfer_biz_content() -> None:
    biz = mapping.transfer_biz(
        out_biz_no="po01",
        amount=Money(12345, "CNY"),
        recipient=AccountIdentifier("alipay_open_id", "074a1"),
        title="School fees",
        remark="",
    )
    assert biz == {
        "out_biz_no": "po01",
        "trans_amount": "123.45",
        "product_code": "TRANS_ACCOUNT_NO_PWD",
        "biz_scene": "DIRECT_TRANSFER",
        "order_title": "School fees",
        "payee_info": {"identity": "074a1", "identity_type": "ALIPAY_OPEN_ID"},
    }


# --- settings ------------------------------------------------------------------------------------


def test_settings(tmp_path: Path) -> None:
    embedded = AlipaySettings()
    assert embedded.gateway_url == "http://127.0.0.1:8093/gateway.do"
    credentials = embedded.credentials(tmp_path)
    assert credentials.generate_app_key
    assert credentials.alipay_public_keys_dir == tmp_path / "alipay-sandbox" / "alipay-public-keys"
    real = AlipaySettings(base_url="https://openapi.alipay.com/gateway.do")
    assert real.gateway_url == "https://openapi.alipay.com/gateway.do"
    text = "\n".join(real.problems("production"))
    for variable in ("APP_ID", "APP_PRIVATE_KEY_FILE", "ALIPAY_PUBLIC_KEYS", "CLEARING_ACCOUNT"):
        assert f"GATEWAY_ALIPAY_{variable}" in text
    with pytest.raises(ValueError, match="base_url"):
        AlipaySettings(base_url="openapi.alipay.com")
    with pytest.raises(ValueError, match="app_id"):
        AlipaySettings(app_id="abc")
    assert AlipaySettings(alipay_public_keys="/a.pem, /b.pem").alipay_public_keys == [
        Path("/a.pem"),
        Path("/b.pem"),
    ]


# --- notifications -------------------------------------------------------------------------------


def test_a_transfer_notification_is_authoritative() -> None:
    params = {
        "notify_id": "n1",
        "msg_method": "alipay.fund.trans.order.changed",
        "biz_content": json.dumps(
            {"out_biz_no": "po01", "order_id": "2026", "status": "SUCCESS", "trans_amount": "1.00"}
        ),
    }
    note = webhooks.parse(params, b"")
    assert (note.kind, note.event_id, note.idempotency_key, note.authoritative) == (
        "payout",
        "n1",
        "po01",
        True,
    )
    assert note.result is not None and note.result.amount == Money(100, "CNY")


def test_an_unreadable_status_makes_it_a_hint_and_broken_json_is_refused() -> None:
    base = {"notify_id": "n1", "msg_method": "alipay.fund.trans.order.changed"}
    hint = webhooks.parse({**base, "biz_content": '{"out_biz_no": "po01", "status": "?"}'}, b"")
    assert (hint.result, hint.authoritative) == (None, False)
    with pytest.raises(WebhookVerificationError) as raised:
        webhooks.parse({**base, "biz_content": "{"}, b"")
    assert raised.value.reason == "malformed_body"


def test_refund_payment_and_other_notifications() -> None:
    refund = webhooks.parse(
        {"notify_type": "trade_status_sync", "notify_id": "n2", "out_biz_no": "rf_1",
         "refund_fee": "1.00", "trade_no": "2026"}, b"")  # fmt: skip
    assert (refund.kind, refund.idempotency_key) == ("refund", "rf_1")
    payment = webhooks.parse({"notify_type": "trade_status_sync", "notify_id": "n3"}, b"")
    assert payment.kind == "payment"
    other = webhooks.parse({"foo": "bar"}, b"foo=bar")
    assert other.kind == "other" and other.event_id.startswith("sha256:")


def test_forms_in_other_charsets_are_decoded_as_declared() -> None:
    body = urlencode({"charset": "gbk", "subject": "转账"}, encoding="gbk").encode()
    assert webhooks.parse_form(body)["subject"] == "转账"
