"""Alipay OpenAPI: request parameters, answers -> our results, and the status and error tables.

Sources (Alipay open platform documentation, opendocs.alipay.com / docs.open.alipay.com):

* `alipay.fund.trans.uni.transfer` (单笔转账, product TRANS_ACCOUNT_NO_PWD, scene
  DIRECT_TRANSFER): payee `identity` + `identity_type` (ALIPAY_USER_ID, ALIPAY_OPEN_ID, or
  ALIPAY_LOGON_ID, which needs the payee's real `name`), `trans_amount` in yuan with two
  decimals; answers `order_id`, `pay_fund_order_id`, `status`. `out_biz_no` is what Alipay
  deduplicates on (a repeat returns the first result).
* `alipay.fund.trans.common.query` (转账业务单据查询, docs.open.alipay.com/api_28): `status`
  INIT, WAIT_PAY, DEALING, SUCCESS, FAIL, REFUND (returned after success), CLOSED;
  `ORDER_NOT_EXIST` when Alipay has no such order.
* `alipay.fund.trans.order.changed`: the message-service notification of a transfer's status.
* `alipay.trade.refund` / `alipay.trade.fastpay.refund.query` (refunds of an Alipay *payment*;
  `out_request_no` deduplicates; `fund_change` Y means this call moved the money; the query
  answers `refund_status` REFUND_SUCCESS, or nothing when there is no such refund).
* Public answer codes: 10000 success, 20000 service unavailable (may have been done: ask),
  20001 authorisation, 40001 missing parameter, 40002 invalid parameter, 40004 business
  failure (its `sub_code` says which), 40006 insufficient permissions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from adapters.base import (
    AccountIdentifier,
    PayoutResult,
    PayoutState,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    UnknownProviderStatus,
)
from gateway.domain.money import Money, MoneyError

CURRENCY = "CNY"
PRODUCT_CODE = "TRANS_ACCOUNT_NO_PWD"
BIZ_SCENE = "DIRECT_TRANSFER"
METHOD_TRANSFER = "alipay.fund.trans.uni.transfer"
METHOD_TRANSFER_QUERY = "alipay.fund.trans.common.query"
METHOD_REFUND = "alipay.trade.refund"
METHOD_REFUND_QUERY = "alipay.trade.fastpay.refund.query"
MSG_TRANSFER_CHANGED = "alipay.fund.trans.order.changed"
OUT_NO = re.compile(r"^[0-9A-Za-z_]{1,64}$")
# Our identifier types -> Alipay's identity_type.
IDENTITY_TYPES = {
    "alipay_user_id": "ALIPAY_USER_ID",
    "alipay_open_id": "ALIPAY_OPEN_ID",
    "alipay_logon_id": "ALIPAY_LOGON_ID",
}
NAME_REQUIRED = frozenset({"alipay_logon_id"})
USER_ID = re.compile(r"^2088[0-9]{12}$")


def out_biz_no(reference: str) -> str:
    """The `out_biz_no` of one of our payouts: its id without the underscore."""
    value = re.sub(r"[^0-9A-Za-z]", "", reference)
    if not OUT_NO.match(value):
        raise ValueError(f"{reference!r} cannot be an Alipay out_biz_no")
    return value


def yuan(amount: Money) -> str:
    """An amount on the wire: yuan with exactly two decimals (CNY's exponent)."""
    if amount.currency != CURRENCY:
        raise ValueError("Alipay amounts are CNY")
    return amount.value


def parse_yuan(value: object) -> Money:
    """A yuan amount from Alipay ("100.00"; "0.1" is read exactly, never rounded)."""
    if not isinstance(value, str):
        raise UnknownProviderStatus(
            "Alipay reported an amount that is not a string", provider_code="amount"
        )
    try:
        return Money.from_decimal(Decimal(value), CURRENCY)
    except (InvalidOperation, MoneyError):
        raise UnknownProviderStatus(
            "Alipay reported an amount that is not valid for CNY", provider_code="amount"
        ) from None


# --- status tables -------------------------------------------------------------------------------

# Transfer order status -> our payout state (exhaustive; anything else raises).
TRANSFER_STATUSES: dict[str, PayoutState] = {
    "SUCCESS": "succeeded",
    "DEALING": "pending",  # 处理中
    "INIT": "pending",  # 待处理
    "WAIT_PAY": "pending",  # 等待支付
    "FAIL": "failed",
    "CLOSED": "failed",  # 订单超时关闭
    "REFUND": "failed",  # 退票: paid, then returned to the bank's Alipay account
}

# Refund query `refund_status` -> our state (exhaustive).
REFUND_STATUSES: dict[str, PayoutState] = {"REFUND_SUCCESS": "succeeded"}

# --- error table ---------------------------------------------------------------------------------

Outcome = Literal["rejected", "unavailable", "unknown", "not_found"]


@dataclass(frozen=True)
class ErrorRule:
    """What an answer's code/sub_code means: `outcome` picks the exception or flow, `code` is
    our partner-facing code, `message` partner-safe; `retryable` as Alipay documents it."""

    outcome: Outcome
    code: str
    message: str
    retryable: bool = False


_INTEGRATION = ErrorRule(
    "rejected", "provider_integration_error", "Alipay refused the request as malformed"
)
_AUTH = ErrorRule(
    "rejected", "provider_authentication_failed", "Alipay did not accept the bank's credentials"
)
_DECLINED = ErrorRule("rejected", "provider_declined", "Alipay declined the request")
_UNKNOWN = ErrorRule(
    "unknown", "provider_error", "Alipay failed while processing the request", retryable=True
)
_NOT_PERMITTED = ErrorRule(
    "rejected", "recipient_not_permitted", "The recipient's Alipay account cannot receive it"
)
_FLOAT = ErrorRule(
    "rejected",
    "provider_insufficient_float",
    "The bank's Alipay account cannot cover the payment",
)
_REFUND_AMOUNT = ErrorRule(
    "rejected", "refund_amount_invalid", "The refund amount is not allowed for this payment"
)

# Top-level `code` (besides 10000 and 40004, whose sub_code decides).
CODES: dict[str, ErrorRule] = {
    "20000": _UNKNOWN,  # 服务不可用: the request may have been carried out
    "20001": _AUTH,  # 授权权限不足
    "40001": _INTEGRATION,  # 缺少必选参数
    "40002": _INTEGRATION,  # 非法的参数
    "40006": ErrorRule("rejected", "provider_declined", "The application lacks the permission"),
}
# Protocol-level sub codes that are more specific than their code.
PROTOCOL_SUB_CODES: dict[str, ErrorRule] = {
    "isv.invalid-signature": _AUTH,
    "isv.invalid-app-id": _AUTH,
    "isv.invalid-signature-type": _AUTH,
    "aop.invalid-auth-token": _AUTH,
    # certificate mode (公钥证书): the SNs or certificates the bank sent are not Alipay's
    "isv.missing-app-cert-sn": _AUTH,
    "isv.app-cert-not-exist": _AUTH,
    "isv.app-cert-expired": _AUTH,
    "isv.missing-alipay-root-cert-sn": _AUTH,
    "isv.invalid-alipay-root-cert-sn": _AUTH,
    "isv.alipay-cert-not-exist": _AUTH,
    "isp.unknow-error": _UNKNOWN,
    "aop.unknow-error": _UNKNOWN,
}

# 40004 `sub_code` -> rule (exhaustive for what we know; an unlisted one raises).
BUSINESS: dict[str, ErrorRule] = {
    # transfers
    "PAYEE_NOT_EXIST": ErrorRule("rejected", "recipient_not_found", "Alipay has no such account"),
    "PAYEE_USER_INFO_ERROR": ErrorRule(
        "rejected", "recipient_name_mismatch", "The name does not match the Alipay account"
    ),
    "PAYEE_ACCOUNT_STATUS_ERROR": _NOT_PERMITTED,
    "PAYEE_USERINFO_STATUS_ERROR": _NOT_PERMITTED,
    "PAYEE_NOT_RELNAME_CERTIFY": _NOT_PERMITTED,
    "PERMIT_CHECK_PERM_LIMITED": _NOT_PERMITTED,
    "PAYEE_ACC_OCUPIED": ErrorRule(
        "rejected", "recipient_invalid", "The logon id belongs to several Alipay accounts"
    ),
    "BALANCE_IS_NOT_ENOUGH": _FLOAT,
    "PAYER_BALANCE_NOT_ENOUGH": _FLOAT,
    "EXCEED_LIMIT_SM_AMOUNT": ErrorRule(
        "rejected", "amount_above_maximum", "The amount is above Alipay's per-transfer limit"
    ),
    "EXCEED_LIMIT_SM_MIN_AMOUNT": ErrorRule(
        "rejected", "amount_below_minimum", "The amount is below Alipay's minimum"
    ),
    "EXCEED_LIMIT_DM_AMOUNT": ErrorRule(
        "rejected", "provider_limit_exceeded", "The bank's daily Alipay transfer limit is reached"
    ),
    "EXCEED_LIMIT_MM_AMOUNT": ErrorRule(
        "rejected", "provider_limit_exceeded", "The bank's monthly Alipay transfer limit is reached"
    ),
    "EXCEED_LIMIT_PERSONAL_SM_AMOUNT": ErrorRule(
        "rejected", "recipient_limit_exceeded", "The payment exceeds the recipient's limits"
    ),
    "PAYER_PAYEE_CANNOT_SAME": ErrorRule(
        "rejected", "provider_validation_failed", "The payer and the payee are the same account"
    ),
    "PAYER_STATUS_ERROR": _DECLINED,
    "PAYER_USER_INFO_ERROR": _DECLINED,
    "PAYER_CERTIFY_CHECK_FAIL": _DECLINED,
    "PRODUCT_NOT_SIGNED": ErrorRule(
        "rejected", "provider_declined", "The bank has not signed this Alipay product"
    ),
    "INVALID_PARAMETER": ErrorRule(
        "rejected", "provider_validation_failed", "Alipay refused the request as invalid"
    ),
    "SYSTEM_ERROR": _UNKNOWN,  # 系统繁忙: retry with the same out_biz_no
    "ORDER_NOT_EXIST": ErrorRule("not_found", "not_found", "Alipay has no such order"),
    # refunds (trade)
    "ACQ.SYSTEM_ERROR": _UNKNOWN,
    "ACQ.INVALID_PARAMETER": ErrorRule(
        "rejected", "provider_validation_failed", "Alipay refused the request as invalid"
    ),
    "ACQ.TRADE_NOT_EXIST": ErrorRule("rejected", "payment_not_found", "Alipay has no such payment"),
    "ACQ.TRADE_STATUS_ERROR": ErrorRule(
        "rejected", "payment_not_refundable", "The payment cannot be refunded in its state"
    ),
    "ACQ.TRADE_HAS_FINISHED": ErrorRule(
        "rejected", "payment_not_refundable", "The payment is finished and cannot be refunded"
    ),
    "ACQ.TRADE_NOT_ALLOW_REFUND": ErrorRule(
        "rejected", "payment_not_refundable", "The payment cannot be refunded"
    ),
    "ACQ.SELLER_BALANCE_NOT_ENOUGH": _FLOAT,
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL": _REFUND_AMOUNT,
    "ACQ.REASON_TRADE_REFUND_FEE_ERR": _REFUND_AMOUNT,
    "ACQ.REFUND_FEE_ERROR": _REFUND_AMOUNT,
    "ACQ.DISCORDANT_REPEAT_REQUEST": ErrorRule(
        "rejected", "refund_conflict", "The refund id was used with other details"
    ),
    "ACQ.ACCESS_FORBIDDEN": _DECLINED,
}


def error_rule(answer: dict[str, Any]) -> ErrorRule:
    """The rule for a non-10000 answer; an unknown code or 40004 sub_code raises
    `UnknownProviderStatus` (never defaulted: the caller treats the outcome as unknown)."""
    code = str(answer.get("code", ""))
    sub_code = str(answer.get("sub_code", ""))
    if code == "40004":
        rule = BUSINESS.get(sub_code)
    else:
        rule = PROTOCOL_SUB_CODES.get(sub_code) or CODES.get(code)
    if rule is None:
        raise UnknownProviderStatus(
            "Alipay answered with a code the adapter does not know",
            provider_code=provider_code(answer),
        )
    return rule


def provider_code(answer: dict[str, Any]) -> str:
    return f"{answer.get('code', '-')}.{answer.get('sub_code') or '-'}"[:60]


def error_for(rule: ErrorRule, answer: dict[str, Any]) -> ProviderError:
    code = provider_code(answer)
    if rule.outcome == "unavailable":
        return ProviderUnavailable(rule.message, code=rule.code, provider_code=code)
    if rule.outcome in ("unknown", "not_found"):
        return ProviderOutcomeUnknown(rule.message, code=rule.code, provider_code=code)
    return ProviderRejected(rule.message, code=rule.code, provider_code=code)


def refused(rule: ErrorRule, answer: dict[str, Any]) -> PayoutResult:
    return PayoutResult(
        state="failed",
        provider_status=f"code {answer.get('code', '-')}"[:60],
        failure_code=rule.code,
        failure_message=rule.message,
        provider_code=provider_code(answer),
    )


# --- requests ------------------------------------------------------------------------------------


def payee(recipient: AccountIdentifier) -> dict[str, str]:
    identity_type = IDENTITY_TYPES.get(recipient.type)
    if identity_type is None:
        raise ValueError(f"{recipient.type} is not an Alipay identity type")
    info = {"identity": recipient.value, "identity_type": identity_type}
    if recipient.name:
        info["name"] = recipient.name
    return info


def transfer_biz(
    *, out_biz_no: str, amount: Money, recipient: AccountIdentifier, title: str, remark: str
) -> dict[str, Any]:
    """biz_content of `alipay.fund.trans.uni.transfer`."""
    body: dict[str, Any] = {
        "out_biz_no": out_biz_no,
        "trans_amount": yuan(amount),
        "product_code": PRODUCT_CODE,
        "biz_scene": BIZ_SCENE,
        "order_title": title[:128],
        "payee_info": payee(recipient),
    }
    if remark:
        body["remark"] = remark[:200]
    return body


def transfer_query_biz(out_biz_no: str) -> dict[str, Any]:
    return {"out_biz_no": out_biz_no, "product_code": PRODUCT_CODE, "biz_scene": BIZ_SCENE}


def refund_biz(
    *, trade_no: str | None, out_trade_no: str | None, amount: Money, out_request_no: str
) -> dict[str, Any]:
    body: dict[str, Any] = {"refund_amount": yuan(amount), "out_request_no": out_request_no}
    if trade_no:
        body["trade_no"] = trade_no
    else:
        body["out_trade_no"] = out_trade_no
    return body


def refund_query_biz(
    *, trade_no: str | None, out_trade_no: str | None, out_request_no: str
) -> dict[str, Any]:
    body: dict[str, Any] = {"out_request_no": out_request_no}
    if trade_no:
        body["trade_no"] = trade_no
    else:
        body["out_trade_no"] = out_trade_no
    return body


# --- answers -------------------------------------------------------------------------------------


def _text(obj: dict[str, Any], name: str, limit: int = 100) -> str | None:
    value = obj.get(name)
    return str(value)[:limit] if isinstance(value, str) and value else None


def transfer_result(obj: dict[str, Any]) -> PayoutResult:
    """A transfer order (transfer answer, query answer, or a notification's biz_content)."""
    raw = obj.get("status")
    state = TRANSFER_STATUSES.get(raw) if isinstance(raw, str) else None
    if state is None:
        raise UnknownProviderStatus(
            "Alipay reported an unknown transfer status", provider_code=str(raw)[:60]
        )
    failure_code = failure_message = provider = None
    if state == "failed":
        provider = str(obj.get("error_code") or raw)[:60]
        if raw == "REFUND":
            failure_code, failure_message = "provider_reversed", "Alipay returned the transfer"
        elif raw == "CLOSED":
            failure_code, failure_message = "provider_cancelled", "Alipay closed the transfer"
        else:
            rule = BUSINESS.get(str(obj.get("error_code") or ""))
            failure_code, failure_message = (
                (rule.code, rule.message)
                if rule is not None and rule.outcome == "rejected"
                else ("provider_failed", "Alipay could not complete the transfer")
            )
    amount = obj.get("trans_amount")
    return PayoutResult(
        state=state,
        provider_status=str(raw),
        request_id=_text(obj, "out_biz_no", 64),
        transaction_reference=_text(obj, "order_id"),
        failure_code=failure_code,
        failure_message=failure_message,
        provider_code=provider,
        amount=parse_yuan(amount) if amount is not None else None,
    )


def refund_query_result(obj: dict[str, Any]) -> PayoutResult:
    """`alipay.trade.fastpay.refund.query`: data means refunded, none means no such refund."""
    raw = obj.get("refund_status")
    amount = obj.get("refund_amount")
    if raw is None:
        if amount is None:
            return PayoutResult(state="not_found", provider_status="not_found")
        raw = "REFUND_SUCCESS"  # older answers: the refund's data alone means it succeeded
    state = REFUND_STATUSES.get(raw) if isinstance(raw, str) else None
    if state is None:
        raise UnknownProviderStatus(
            "Alipay reported an unknown refund status", provider_code=str(raw)[:60]
        )
    return PayoutResult(
        state=state,
        provider_status=str(raw),
        request_id=_text(obj, "out_request_no", 64),
        transaction_reference=_text(obj, "trade_no"),
        amount=parse_yuan(amount) if amount is not None else None,
    )
