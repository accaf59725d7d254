"""WeChat Pay tables and transforms (adapters/providers/wechatpay/mapping.py), its settings and
its notification parsing: every documented status and error code maps somewhere definite,
anything else raises, amounts are integer fen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.base import (
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    UnknownProviderStatus,
)
from adapters.providers.wechatpay import mapping, webhooks
from adapters.providers.wechatpay.settings import SANDBOX_APIV3_KEY, WechatPaySettings
from gateway.domain.money import Money

KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "wechatpay" / "test-keys"


# --- status tables -------------------------------------------------------------------------------

DOCUMENTED_STATES = {
    "ACCEPTED": "pending",
    "PROCESSING": "pending",
    "WAIT_USER_CONFIRM": "pending",
    "TRANSFERING": "pending",
    "SUCCESS": "succeeded",
    "FAIL": "failed",
    "CANCELING": "pending",
    "CANCELLED": "failed",
}


def bill(state: str, **extra: Any) -> dict[str, Any]:
    return {"out_bill_no": "po01", "transfer_bill_no": "1330001", "state": state, **extra}


def test_every_documented_transfer_state_has_a_meaning() -> None:
    assert mapping.TRANSFER_STATES == DOCUMENTED_STATES
    for state, ours in DOCUMENTED_STATES.items():
        assert mapping.transfer_result(bill(state)).state == ours


@pytest.mark.parametrize("state", ["success", "DONE", "", None, 3])
def test_an_unknown_transfer_state_raises(state: object) -> None:
    with pytest.raises(UnknownProviderStatus):
        mapping.transfer_result(bill(state))  # type: ignore[arg-type]


def test_a_failure_carries_its_reason_and_an_unknown_reason_still_fails() -> None:
    frozen = mapping.transfer_result(bill("FAIL", fail_reason="ACCOUNT_FROZEN"))
    assert (frozen.failure_code, frozen.provider_code) == (
        "recipient_not_permitted",
        "ACCOUNT_FROZEN",
    )
    odd = mapping.transfer_result(bill("FAIL", fail_reason="SOMETHING_NEW"))
    assert (odd.state, odd.failure_code) == ("failed", "provider_failed")
    cancelled = mapping.transfer_result(bill("CANCELLED"))
    assert cancelled.failure_code == "provider_cancelled"


def test_amounts_are_whole_fen() -> None:
    assert mapping.transfer_result(bill("SUCCESS", transfer_amount=25000)).amount == Money(
        25000, "CNY"
    )
    for wrong in (250.0, "25000", True, -1):
        with pytest.raises(UnknownProviderStatus):
            mapping.transfer_result(bill("SUCCESS", transfer_amount=wrong))


def test_refund_states() -> None:
    assert set(mapping.REFUND_STATES) == {"SUCCESS", "PROCESSING", "CLOSED", "ABNORMAL"}
    answer = {"out_refund_no": "rf_1", "refund_id": "5000", "amount": {"refund": 100}}
    assert mapping.refund_result({**answer, "status": "SUCCESS"}).state == "succeeded"
    assert mapping.refund_result({**answer, "refund_status": "PROCESSING"}).state == "pending"
    abnormal = mapping.refund_result({**answer, "status": "ABNORMAL"})
    assert (abnormal.state, abnormal.failure_code) == ("failed", "refund_abnormal")
    with pytest.raises(UnknownProviderStatus):
        mapping.refund_result({**answer, "status": "REFUNDED"})


def test_payment_states_decide_whether_a_refund_may_be_asked() -> None:
    paid = {"trade_state": "SUCCESS", "amount": {"total": 10000}}
    assert mapping.payment_total(paid) == 10000
    assert mapping.payment_total({**paid, "trade_state": "REFUND"}) == 10000
    with pytest.raises(ProviderRejected) as raised:
        mapping.payment_total({**paid, "trade_state": "NOTPAY"})
    assert raised.value.code == "payment_not_refundable"
    with pytest.raises(UnknownProviderStatus):
        mapping.payment_total({**paid, "trade_state": "PAID"})


# --- errors --------------------------------------------------------------------------------------


def test_every_listed_error_has_a_definite_outcome() -> None:
    for (status, code), rule in mapping.ERRORS.items():
        assert mapping.error_rule(status, {"code": code}) is rule
        error = mapping.error_for(rule, status, {"code": code})
        expected = {
            "rejected": ProviderRejected,
            "unavailable": ProviderUnavailable,
            "unknown": ProviderOutcomeUnknown,
            "not_found": ProviderOutcomeUnknown,
        }[rule.outcome]
        assert isinstance(error, expected)
        assert error.provider_code == f"{status}.{code}"


@pytest.mark.parametrize(
    ("status", "code", "outcome", "ours"),
    [
        (403, "NOT_ENOUGH", "rejected", "provider_insufficient_float"),
        (401, "SIGN_ERROR", "rejected", "provider_authentication_failed"),
        (400, "PARAM_ERROR", "rejected", "provider_validation_failed"),
        (429, "FREQUENCY_LIMITED", "unavailable", "provider_rate_limited"),
        (500, "SYSTEM_ERROR", "unknown", "provider_error"),
        (404, "NOT_FOUND", "not_found", "not_found"),
    ],
)
def test_documented_errors(status: int, code: str, outcome: str, ours: str) -> None:
    rule = mapping.error_rule(status, {"code": code, "message": "人看的"})
    assert (rule.outcome, rule.code) == (outcome, ours)


def test_what_the_status_alone_settles_and_what_raises() -> None:
    assert mapping.error_rule(429, {"code": "SLOW_DOWN"}).outcome == "unavailable"
    assert mapping.error_rule(503, None).outcome == "unknown"
    with pytest.raises(UnknownProviderStatus) as raised:
        mapping.error_rule(400, {"code": "NEW_THING"})
    assert raised.value.provider_code == "400.NEW_THING"
    with pytest.raises(UnknownProviderStatus):
        mapping.error_rule(403, None)


def test_a_signed_refusal_becomes_a_failed_result() -> None:
    rule = mapping.error_rule(403, {"code": "NOT_ENOUGH"})
    result = mapping.refused(rule, 403, {"code": "NOT_ENOUGH"})
    assert (result.state, result.failure_code, result.provider_code) == (
        "failed",
        "provider_insufficient_float",
        "403.NOT_ENOUGH",
    )


# --- requests ------------------------------------------------------------------------------------


def test_out_bill_no_is_letters_and_digits_and_stable() -> None:
    assert mapping.out_bill_no("po_01jd9k3m6r1x8y0v4t2c5n7q9w") == "po01jd9k3m6r1x8y0v4t2c5n7q9w"
    assert mapping.out_bill_no("po_01jd9k3m6r1x8y0v4t2c5n7q9w") == mapping.out_bill_no(
        "po_01jd9k3m6r1x8y0v4t2c5n7q9w"
    )
    with pytest.raises(ValueError, match="out_bill_no"):
        mapping.out_bill_no("x" * 40)


def test_the_transfer_body_in_fen_with_a_short_remark() -> None:
    body = mapping.transfer_body(
        appid="wx1",
        out_bill_no="po01",
        openid="o-1",
        amount=Money.parse("1234.56", "CNY"),
        remark="这是一段很长很长很长很长很长很长很长很长很长很长很长的转账备注, 超过三十二个字",
        notify_url=None,
        scene_id="1000",
        report_infos=[],
        user_recv_perception="",
        encrypted_name=None,
    )
    assert body["transfer_amount"] == 123456 and isinstance(body["transfer_amount"], int)
    assert len(body["transfer_remark"]) == 32
    assert "notify_url" not in body and "user_name" not in body


# --- settings ------------------------------------------------------------------------------------


def test_embedded_settings_fall_back_to_the_sandbox(tmp_path: Path) -> None:
    credentials = WechatPaySettings().credentials(tmp_path)
    assert credentials.apiv3_key == SANDBOX_APIV3_KEY.encode()
    assert credentials.generate_merchant_key
    assert credentials.platform_keys_dir == tmp_path / "wechatpay-sandbox" / "platform-keys"
    assert "sandboxAPIv3" not in repr(credentials)


def test_a_real_provider_needs_every_credential() -> None:
    problems = WechatPaySettings(base_url="https://api.mch.weixin.qq.com").problems("production")
    text = "\n".join(problems)
    for variable in ("MCHID", "APPID", "MERCHANT_SERIAL_NO", "MERCHANT_PRIVATE_KEY_FILE",
                     "APIV3_KEY", "PLATFORM_KEYS", "CLEARING_ACCOUNT"):  # fmt: skip
        assert f"GATEWAY_WECHATPAY_{variable}" in text
    production = WechatPaySettings(
        base_url="https://api.mch.weixin.qq.com",
        mchid="1900000001",
        appid="wx1",
        merchant_serial_no="ABCDEF12",
        merchant_private_key_file=KEYS / "merchant_private_key.pem",
        apiv3_key="0123456789abcdef",  # 16 bytes: tests only
        platform_keys=[str(KEYS / "platform_cert.pem")],
        clearing_account="CNY:9100000000000202",
    )
    assert production.problems("production") == [
        "GATEWAY_WECHATPAY_APIV3_KEY must be 32 bytes in production"
    ]
    assert production.problems("development") == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("apiv3_key", "short"),
        ("mchid", "19x"),
        ("merchant_serial_no", "not-hex"),
        ("platform_keys", "PUB_KEY_ID_1=,x"),
        ("transfer_scene_id", "10"),
        ("transfer_scene_report_infos", '[{"info_type": "x"}]'),
    ],
)
def test_bad_settings_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        WechatPaySettings(**{field: value})


def test_platform_keys_entries(tmp_path: Path) -> None:
    settings = WechatPaySettings(
        platform_keys=f"{KEYS}/platform_cert.pem, PUB_KEY_ID_0114232134912410000000000000="
        f"{KEYS}/PUB_KEY_ID_0114232134912410000000000000.pem",
        base_url="https://api.mch.weixin.qq.com",
    )
    entries = settings.credentials(tmp_path).platform_keys
    assert entries == (
        (None, KEYS / "platform_cert.pem"),
        (
            "PUB_KEY_ID_0114232134912410000000000000",
            KEYS / "PUB_KEY_ID_0114232134912410000000000000.pem",
        ),
    )


# --- notifications -------------------------------------------------------------------------------


def _parsed(event_type: str, resource: dict[str, Any]) -> Any:
    return webhooks.parse(
        webhooks.Notification({"id": "EV-1", "event_type": event_type}, resource, "serial")
    )


def test_a_transfer_notification_is_authoritative() -> None:
    note = _parsed("MCHTRANSFER.BILL.FINISHED", bill("SUCCESS", transfer_amount=100))
    assert (note.kind, note.authoritative, note.idempotency_key) == ("payout", True, "po01")


def test_an_unreadable_state_makes_the_notification_a_hint() -> None:
    note = _parsed("MCHTRANSFER.BILL.FINISHED", bill("WHATEVER"))
    assert (note.kind, note.result, note.authoritative) == ("payout", None, False)


def test_refunds_and_other_events_are_not_payouts() -> None:
    refund = _parsed("REFUND.SUCCESS", {"out_refund_no": "rf_1", "refund_status": "SUCCESS"})
    assert refund.kind == "refund"
    assert _parsed("TRANSACTION.SUCCESS", {"out_trade_no": "1"}).kind == "other"
