"""WeChat Pay API v3: request bodies, answers -> our results, and the status and error tables.

Sources (WeChat Pay merchant documentation, pay.weixin.qq.com/doc/v3/merchant):

* 商家转账 (merchant transfer to a user's balance, the API new merchants get since
  2025-01-15): `POST /v3/fund-app/mch-transfer/transfer-bills` ("发起转账", 4012716434) and
  `GET /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}` ("商户单号查询转账单";
  the transfer-bill-no variant is 4012716457). `state` is one of ACCEPTED, PROCESSING,
  WAIT_USER_CONFIRM, TRANSFERING, SUCCESS, FAIL, CANCELING, CANCELLED; amounts are integer fen;
  `out_bill_no` is letters and digits, at most 32, unique per merchant: WeChat Pay answers a
  repeated one with the original bill, which is what makes the POST safe to repeat. The
  documentation's rule for errors: a non-200 answer says nothing about the bill; never retry
  under a new `out_bill_no` before the status query says it failed; an error code not in the
  table is an unknown outcome.
* Notification `MCHTRANSFER.BILL.FINISHED` (its resource: out_bill_no, transfer_bill_no,
  state, transfer_amount, fail_reason, ...).
* 退款 (refunds of a WeChat Pay *payment*): `POST /v3/refund/domestic/refunds`,
  `GET /v3/refund/domestic/refunds/{out_refund_no}`, notifications REFUND.SUCCESS / .ABNORMAL /
  .CLOSED; `status` SUCCESS, CLOSED, PROCESSING, ABNORMAL. A refund needs the payment's total:
  `GET /v3/pay/transactions/id/{transaction_id}` (or `/out-trade-no/{out_trade_no}`) gives it.
* The common error codes of API v3 ("错误码"): HTTP status + `code` (+ a `message` for people,
  never for programs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from adapters.base import (
    PayoutResult,
    PayoutState,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    UnknownProviderStatus,
)
from gateway.domain.money import Money

CURRENCY = "CNY"
OUT_NO = re.compile(r"^[0-9A-Za-z]{1,32}$")
OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
# At or above this (fen), WeChat Pay requires the payee's real name (user_name, encrypted).
NAME_REQUIRED_FROM = 200_000
REMARK_MAX = 32
EVENT_TRANSFER = "MCHTRANSFER.BILL.FINISHED"
REFUND_EVENTS = ("REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED")


def out_bill_no(reference: str) -> str:
    """The `out_bill_no` of one of our payouts: its id without the underscore (`po_01j…` ->
    `po01j…`, 28 characters), stable across retries."""
    value = re.sub(r"[^0-9A-Za-z]", "", reference)
    if not OUT_NO.match(value):
        raise ValueError(f"{reference!r} cannot be a WeChat Pay out_bill_no")
    return value


# --- status tables -------------------------------------------------------------------------------

# 转账单据 state -> our payout state (exhaustive; anything else raises).
TRANSFER_STATES: dict[str, PayoutState] = {
    "ACCEPTED": "pending",  # 转账已受理
    "PROCESSING": "pending",  # 转账处理中 (e.g. the merchant's balance is being topped up)
    "WAIT_USER_CONFIRM": "pending",  # 待收款用户确认 (user-confirmation mode)
    "TRANSFERING": "pending",  # 转账中, result not yet known
    "SUCCESS": "succeeded",  # 转账成功
    "FAIL": "failed",  # 转账失败
    "CANCELING": "pending",  # 撤销中 (the merchant cancelled; not final yet)
    "CANCELLED": "failed",  # 已撤销 (cancelled, or closed unconfirmed: money back to merchant)
}

# fail_reason of a FAIL bill -> our partner-facing code (the state is what decides: an
# unlisted reason still fails the payout, with `provider_failed`).
_NOT_PERMITTED = ("recipient_not_permitted", "The recipient's account cannot receive transfers")
_LIMIT = ("recipient_limit_exceeded", "The payment exceeds the recipient's limits")
_DECLINED = ("provider_declined", "WeChat Pay or the merchant's set-up declined the transfer")
_NAME = ("recipient_name_mismatch", "The name does not match the recipient's real name")
FAIL_REASONS: dict[str, tuple[str, str]] = {
    "ACCOUNT_FROZEN": _NOT_PERMITTED,
    "ACCOUNT_NOT_EXIST": ("recipient_not_found", "The recipient has no WeChat Pay account"),
    "PAYEE_ACCOUNT_ABNORMAL": _NOT_PERMITTED,
    "RECEIVE_ACCOUNT_NOT_PERMMIT": _NOT_PERMITTED,
    "RECEIVE_ACCOUNT_NOT_CONFIGURE": _NOT_PERMITTED,
    "REAL_NAME_CHECK_FAIL": _NOT_PERMITTED,
    "NAME_NOT_CORRECT": _NAME,
    "ID_CARD_NOT_CORRECT": _NAME,
    "OPENID_INVALID": ("recipient_invalid", "The OpenID is not valid for the bank's AppID"),
    "TRANSFER_QUOTA_EXCEED": _LIMIT,
    "DAY_RECEIVED_QUOTA_EXCEED": _LIMIT,
    "MONTH_RECEIVED_QUOTA_EXCEED": _LIMIT,
    "DAY_RECEIVED_COUNT_EXCEED": _LIMIT,
    "REALNAME_ACCOUNT_RECEIVED_QUOTA_EXCEED": _LIMIT,
    "BLOCK_B2C_USERLIMITAMOUNT_BSRULE_MONTH": _LIMIT,
    "BLOCK_B2C_USERLIMITAMOUNT_MONTH": _LIMIT,
    "PAYER_ACCOUNT_ABNORMAL": _DECLINED,
    "PRODUCT_AUTH_CHECK_FAIL": _DECLINED,
    "TRANSFER_SCENE_UNAVAILABLE": _DECLINED,
    "TRANSFER_SCENE_INVALID": _DECLINED,
    "TRANSFER_RISK": _DECLINED,
    "MERCHANT_REJECT": _DECLINED,
    "MERCHANT_NOT_CONFIRM": _DECLINED,
    "OVERDUE_CLOSE": ("recipient_did_not_confirm", "The recipient did not accept it in time"),
    "OTHER_FAIL_REASON_TYPE": ("provider_failed", "WeChat Pay could not complete the transfer"),
}

# 退款 status -> our state (exhaustive).
REFUND_STATES: dict[str, PayoutState] = {
    "SUCCESS": "succeeded",
    "PROCESSING": "pending",
    "CLOSED": "failed",
    # 退款异常: the refund could not reach the user's card (e.g. cancelled); it stays with the
    # merchant until someone re-issues it at WeChat Pay. Not paid: an operator must act.
    "ABNORMAL": "failed",
}

# 支付 trade_state of the payment a refund is for: refundable or not (exhaustive).
PAYMENT_STATES: dict[str, bool] = {
    "SUCCESS": True,
    "REFUND": True,  # already (partly) refunded: another partial refund may follow
    "NOTPAY": False,
    "CLOSED": False,
    "REVOKED": False,
    "USERPAYING": False,
    "PAYERROR": False,
}

# --- error table ---------------------------------------------------------------------------------

Outcome = Literal["rejected", "unavailable", "unknown", "not_found"]


@dataclass(frozen=True)
class ErrorRule:
    """What an error answer means: `outcome` picks the exception or flow, `code` is our
    partner-facing code, `message` partner-safe; `retryable` as the provider documents it."""

    outcome: Outcome
    code: str
    message: str
    retryable: bool = False


_INTEGRATION = ErrorRule(
    "rejected", "provider_integration_error", "WeChat Pay refused the request as malformed"
)
_NOT_FOUND = ErrorRule("not_found", "not_found", "WeChat Pay has no such record")
ERRORS: dict[tuple[int, str], ErrorRule] = {
    (400, "PARAM_ERROR"): ErrorRule(
        "rejected", "provider_validation_failed", "WeChat Pay refused the request as invalid"
    ),
    (400, "INVALID_REQUEST"): ErrorRule(
        "rejected", "provider_rejected", "WeChat Pay refused the request (business rule)"
    ),
    (400, "APPID_MCHID_NOT_MATCH"): _INTEGRATION,
    (400, "MCH_NOT_EXISTS"): _INTEGRATION,
    (401, "SIGN_ERROR"): ErrorRule(
        "rejected",
        "provider_authentication_failed",
        "WeChat Pay did not accept the bank's request signature",
    ),
    (403, "NO_AUTH"): ErrorRule(
        "rejected", "provider_declined", "The merchant is not allowed to do this at WeChat Pay"
    ),
    (403, "NOT_ENOUGH"): ErrorRule(
        "rejected",
        "provider_insufficient_float",
        "The bank's WeChat Pay operating account cannot cover the payment",
    ),
    (403, "USER_ACCOUNT_ABNORMAL"): ErrorRule(
        "rejected", "recipient_not_permitted", "The user's WeChat Pay account is restricted"
    ),
    (404, "NOT_FOUND"): _NOT_FOUND,
    (404, "RESOURCE_NOT_EXISTS"): _NOT_FOUND,
    (404, "ORDER_NOT_EXIST"): _NOT_FOUND,
    (429, "FREQUENCY_LIMITED"): ErrorRule(
        "unavailable",
        "provider_rate_limited",
        "WeChat Pay is limiting the bank's requests",
        retryable=True,
    ),
    # "系统异常, 请使用相同参数稍后重新调用": the request may have been carried out.
    (500, "SYSTEM_ERROR"): ErrorRule(
        "unknown", "provider_error", "WeChat Pay failed while processing the request", True
    ),
    (502, "SYSTEM_ERROR"): ErrorRule(
        "unknown", "provider_error", "WeChat Pay failed while processing the request", True
    ),
    (503, "SYSTEM_ERROR"): ErrorRule(
        "unknown", "provider_error", "WeChat Pay failed while processing the request", True
    ),
}


def error_rule(status: int, body: dict[str, Any] | None) -> ErrorRule:
    """The rule for a non-2xx answer. An unlisted code raises `UnknownProviderStatus` (WeChat
    Pay: "如果遇到新的错误码, 请务必不要换单重试"), except what the HTTP status alone settles:
    429 (refused, nothing done) and 5xx (maybe done)."""
    code = str((body or {}).get("code") or "")
    rule = ERRORS.get((status, code))
    if rule is not None:
        return rule
    if status == 429:
        return ERRORS[(429, "FREQUENCY_LIMITED")]
    if status >= 500:
        return ErrorRule("unknown", "provider_error", "WeChat Pay failed", retryable=True)
    raise UnknownProviderStatus(
        "WeChat Pay answered with an error code the adapter does not know",
        provider_code=f"{status}.{code or '-'}"[:60],
    )


def provider_code(status: int, body: dict[str, Any] | None) -> str:
    return f"{status}.{(body or {}).get('code') or '-'}"[:60]


def error_for(rule: ErrorRule, status: int, body: dict[str, Any] | None) -> ProviderError:
    code = provider_code(status, body)
    if rule.outcome == "unavailable":
        return ProviderUnavailable(rule.message, code=rule.code, provider_code=code)
    if rule.outcome in ("unknown", "not_found"):
        return ProviderOutcomeUnknown(rule.message, code=rule.code, provider_code=code)
    return ProviderRejected(rule.message, code=rule.code, provider_code=code)


def refused(rule: ErrorRule, status: int, body: dict[str, Any] | None) -> PayoutResult:
    """A refusal of a money-moving request, as a failed result (nothing was done)."""
    return PayoutResult(
        state="failed",
        provider_status=f"HTTP {status}",
        failure_code=rule.code,
        failure_message=rule.message,
        provider_code=provider_code(status, body),
    )


# --- requests ------------------------------------------------------------------------------------


def transfer_body(
    *,
    appid: str,
    out_bill_no: str,
    openid: str,
    amount: Money,
    remark: str,
    notify_url: str | None,
    scene_id: str,
    report_infos: list[dict[str, str]],
    user_recv_perception: str,
    encrypted_name: str | None,
) -> dict[str, Any]:
    """The body of `POST /v3/fund-app/mch-transfer/transfer-bills`."""
    body: dict[str, Any] = {
        "appid": appid,
        "out_bill_no": out_bill_no,
        "transfer_scene_id": scene_id,
        "openid": openid,
        "transfer_amount": amount.minor,
        "transfer_remark": remark[:REMARK_MAX] or "payout",
    }
    if encrypted_name is not None:
        body["user_name"] = encrypted_name
    if notify_url:
        body["notify_url"] = notify_url
    if user_recv_perception:
        body["user_recv_perception"] = user_recv_perception
    if report_infos:
        body["transfer_scene_report_infos"] = [dict(item) for item in report_infos]
    return body


def refund_body(
    *,
    out_refund_no: str,
    transaction_id: str | None,
    out_trade_no: str | None,
    amount: Money,
    total: int,
    reason: str,
    notify_url: str | None,
) -> dict[str, Any]:
    """The body of `POST /v3/refund/domestic/refunds`."""
    body: dict[str, Any] = {
        "out_refund_no": out_refund_no,
        "amount": {"refund": amount.minor, "total": total, "currency": amount.currency},
    }
    if transaction_id:
        body["transaction_id"] = transaction_id
    else:
        body["out_trade_no"] = out_trade_no
    if reason:
        body["reason"] = reason[:80]
    if notify_url:
        body["notify_url"] = notify_url
    return body


# --- answers -------------------------------------------------------------------------------------


def _text(obj: dict[str, Any], name: str, limit: int = 100) -> str | None:
    value = obj.get(name)
    return str(value)[:limit] if isinstance(value, str | int) and value != "" else None


def _fen(value: object, currency: str = CURRENCY) -> Money:
    """An amount in fen: an integer, never a float or a string."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UnknownProviderStatus(
            "WeChat Pay reported an amount that is not a whole number of fen",
            provider_code="amount",
        )
    return Money(value, currency)


def transfer_result(obj: dict[str, Any]) -> PayoutResult:
    """A transfer bill (POST answer, query answer, or a notification's decrypted resource)."""
    raw = obj.get("state")
    state = TRANSFER_STATES.get(raw) if isinstance(raw, str) else None
    if state is None:
        raise UnknownProviderStatus(
            "WeChat Pay reported an unknown transfer state", provider_code=str(raw)[:60]
        )
    failure_code = failure_message = provider = None
    if state == "failed":
        reason = obj.get("fail_reason")
        provider = str(reason)[:60] if reason else raw
        if raw == "CANCELLED":
            failure_code, failure_message = (
                "provider_cancelled",
                "The transfer was cancelled or closed before it was received",
            )
        else:
            failure_code, failure_message = FAIL_REASONS.get(
                str(reason), ("provider_failed", "WeChat Pay could not complete the transfer")
            )
    amount = obj.get("transfer_amount")
    return PayoutResult(
        state=state,
        provider_status=str(raw),
        request_id=_text(obj, "out_bill_no"),
        transaction_reference=_text(obj, "transfer_bill_no"),
        failure_code=failure_code,
        failure_message=failure_message,
        provider_code=provider,
        amount=_fen(amount) if amount is not None else None,
        recipient_action=_confirmation(obj) if raw == "WAIT_USER_CONFIRM" else None,
    )


def _confirmation(obj: dict[str, Any]) -> dict[str, str] | None:
    """WAIT_USER_CONFIRM: the user must accept the transfer in WeChat; the merchant's app
    calls `wx.requestMerchantTransfer` with this `package_info` (plus mchId and appId, which
    the adapter adds). Without it the bill is closed unreceived after 24 hours."""
    package = obj.get("package_info")
    if not isinstance(package, str) or not package:
        return None
    return {"type": "wechatpay_confirm_receipt", "package_info": package}


def refund_result(obj: dict[str, Any]) -> PayoutResult:
    """A refund (POST answer, query answer, or a REFUND.* notification's resource; the
    notification calls the field `refund_status`)."""
    raw = obj.get("status", obj.get("refund_status"))
    state = REFUND_STATES.get(raw) if isinstance(raw, str) else None
    if state is None:
        raise UnknownProviderStatus(
            "WeChat Pay reported an unknown refund status", provider_code=str(raw)[:60]
        )
    failure_code = failure_message = None
    if raw == "CLOSED":
        failure_code, failure_message = "refund_closed", "WeChat Pay closed the refund"
    elif raw == "ABNORMAL":
        failure_code, failure_message = (
            "refund_abnormal",
            "The refund could not reach the user; it must be re-issued at WeChat Pay",
        )
    amounts = obj.get("amount")
    refund = amounts.get("refund") if isinstance(amounts, dict) else None
    currency = amounts.get("currency", CURRENCY) if isinstance(amounts, dict) else CURRENCY
    return PayoutResult(
        state=state,
        provider_status=str(raw),
        request_id=_text(obj, "out_refund_no", 64),
        transaction_reference=_text(obj, "refund_id"),
        failure_code=failure_code,
        failure_message=failure_message,
        provider_code=raw if state == "failed" else None,
        amount=_fen(refund, str(currency)) if refund is not None else None,
    )


def payment_total(obj: dict[str, Any]) -> int:
    """The total (fen) of a payment that may be refunded; raises when it may not."""
    raw = obj.get("trade_state")
    refundable = PAYMENT_STATES.get(raw) if isinstance(raw, str) else None
    if refundable is None:
        raise UnknownProviderStatus(
            "WeChat Pay reported an unknown payment state", provider_code=str(raw)[:60]
        )
    if not refundable:
        raise ProviderRejected(
            "The payment was not completed, so it cannot be refunded",
            code="payment_not_refundable",
            provider_code=raw,
        )
    amounts = obj.get("amount")
    total = amounts.get("total") if isinstance(amounts, dict) else None
    return _fen(total).minor
