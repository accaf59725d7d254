"""Writes the recorded WeChat Pay and Alipay exchanges in contracts/providers/{wechatpay,alipay}/.

The exchanges are transcribed from the providers' API documentation (fields, status words,
error codes, the signature schemes); what cannot be copied from a document (signatures) is made
with the repository's test keys (tests/fixtures/*/test-keys), so the contract tests can check
them: the requests' signatures with the test merchant/app public key, the answers' with the
test platform/Alipay key the adapter is configured with. Deterministic: the same files every
time (fixed clock and nonces; RSA PKCS#1 v1.5 signatures are deterministic; the notification
resources use fixed AES-GCM nonces).

    .venv/bin/python -m tests.contract.make_cn_contracts

This module does not import the adapters: the contracts are an independent reading of the APIs.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
CONTRACTS = ROOT / "contracts" / "providers"
NOW = datetime(2026, 3, 2, 10, 15, 30, tzinfo=UTC)
STAMP = int(NOW.timestamp())
CST = timezone(timedelta(hours=8))

# --- WeChat Pay ----------------------------------------------------------------------------------

WX_BASE = "https://api.mch.weixin.qq.com"
WX_MCHID = "1900000001"
WX_APPID = "wxd678efh567hg6787"
WX_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
WX_APIV3_KEY = b"contractAPIv3key0wallet0gateway0"
WX_PUB_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000"
WX_CERT_SERIAL = "3D1F6E2A9B5C4E7F8A0B1C2D3E4F5A6B7C8D9E0F"
WX_CALLBACK = "https://gateway.bank.example/v1/providers/wechatpay/webhooks"
PAYOUT = "po_01jd9k3m6r1x8y0v4t2c5n7q9w"
OUT_BILL_NO = "po01jd9k3m6r1x8y0v4t2c5n7q9w"
TRANSFER_BILL_NO = "1330000071100999991182020050700019480001"
OPENID = "o-MYE42l80oelYMDE34nYD456Xoy"
REFUND = "rf_01jd9k3m6r1x8y0v4t2c5n7q9w"
TRANSACTION_ID = "1217752501201407033233368018"
WX_SOURCE = (
    "WeChat Pay API v3 merchant documentation (pay.weixin.qq.com/doc/v3/merchant): 商家转账 "
    "发起转账 (4012716434), 商户单号查询转账单, 退款申请, 查询单笔退款, 查询订单, 签名生成, "
    "签名验证, 回调通知 (AEAD_AES_256_GCM), 错误码"
)
WX_SCENE_INFOS = [
    {"info_type": "岗位类型", "info_content": "外卖员"},
    {"info_type": "报酬说明", "info_content": "3月份配送费"},
]


def _key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def _compact(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


WX_MERCHANT = _key(FIXTURES / "wechatpay" / "test-keys" / "merchant_private_key.pem")
WX_PLATFORM_PUB = _key(FIXTURES / "wechatpay" / "test-keys" / "wechatpay_public_key_private.pem")
WX_PLATFORM_CERT = _key(FIXTURES / "wechatpay" / "test-keys" / "platform_private_key.pem")
WX_IMPOSTOR = _key(FIXTURES / "alipay" / "test-keys" / "alipay_private_key.pem")


def wx_authorization(method: str, path: str, body: str, nonce: str) -> str:
    message = f"{method}\n{path}\n{STAMP}\n{nonce}\n{body}\n".encode()
    signature = _sign(WX_MERCHANT, message)
    return (
        f'WECHATPAY2-SHA256-RSA2048 mchid="{WX_MCHID}",nonce_str="{nonce}",'
        f'signature="{signature}",timestamp="{STAMP}",serial_no="{WX_SERIAL}"'
    )


def wx_signed(
    body: str, *, nonce: str, key: rsa.RSAPrivateKey = WX_PLATFORM_PUB, serial: str = WX_PUB_KEY_ID
) -> dict[str, str]:
    message = f"{STAMP}\n{nonce}\n{body}\n".encode()
    return {
        "Wechatpay-Timestamp": str(STAMP),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": _sign(key, message),
        "Wechatpay-Serial": serial,
        "Request-ID": "08" + nonce[:24].upper(),
    }


def wx_exchange(
    method: str,
    path: str,
    request_body: dict[str, Any] | None,
    status: int,
    response_body: dict[str, Any] | None,
    *,
    nonce: str,
    signed: bool = True,
    key: rsa.RSAPrivateKey = WX_PLATFORM_PUB,
    serial: str = WX_PUB_KEY_ID,
    extra_headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    text = _compact(request_body) if request_body is not None else ""
    headers = {
        "Accept": "application/json",
        "Authorization": wx_authorization(method, path, text, nonce),
    }
    if request_body is not None:
        headers["Content-Type"] = "application/json"
    headers.update(extra_headers or {})
    request: dict[str, Any] = {"method": method, "url": WX_BASE + path, "headers": headers}
    if request_body is not None:
        request["body"] = request_body
    answer_text = _compact(response_body) if response_body is not None else ""
    response: dict[str, Any] = {
        "status": status,
        "headers": {"Content-Type": "application/json"}
        | (wx_signed(answer_text, nonce="R" + nonce, key=key, serial=serial) if signed else {}),
        "body": response_body,
    }
    return {"request": request, "response": response}


def transfer_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "appid": WX_APPID,
        "out_bill_no": OUT_BILL_NO,
        "transfer_scene_id": "1005",
        "openid": OPENID,
        "transfer_amount": 25000,
        "transfer_remark": "3月份配送费",
        "notify_url": WX_CALLBACK,
        "user_recv_perception": "劳务报酬",
        "transfer_scene_report_infos": WX_SCENE_INFOS,
    }
    body.update(changes)
    return body


def bill(state: str, **extra: Any) -> dict[str, Any]:
    body = {
        "mch_id": WX_MCHID,
        "out_bill_no": OUT_BILL_NO,
        "transfer_bill_no": TRANSFER_BILL_NO,
        "appid": WX_APPID,
        "state": state,
        "transfer_amount": 25000,
        "transfer_remark": "3月份配送费",
        "openid": OPENID,
        "create_time": "2026-03-02T18:15:31+08:00",
        "update_time": "2026-03-02T18:15:33+08:00",
    }
    body.update(extra)
    return body


def created(state: str, **extra: Any) -> dict[str, Any]:
    return {
        "out_bill_no": OUT_BILL_NO,
        "transfer_bill_no": TRANSFER_BILL_NO,
        "create_time": "2026-03-02T18:15:31+08:00",
        "state": state,
        **extra,
    }


TRANSFER = "/v3/fund-app/mch-transfer/transfer-bills"
TRANSFER_QUERY = f"/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{OUT_BILL_NO}"
PAYMENT_QUERY = f"/v3/pay/transactions/id/{TRANSACTION_ID}?mchid={WX_MCHID}"


def refund_answer(status: str) -> dict[str, Any]:
    return {
        "refund_id": "50000000382019052709732678859",
        "out_refund_no": REFUND,
        "transaction_id": TRANSACTION_ID,
        "out_trade_no": "1217752501201407033233368018",
        "channel": "ORIGINAL",
        "user_received_account": "招商银行信用卡0403",
        "create_time": "2026-03-02T18:15:31+08:00",
        "status": status,
        "amount": {"total": 10000, "refund": 2500, "payer_total": 10000, "payer_refund": 2500,
                   "settlement_refund": 2500, "settlement_total": 10000, "discount_refund": 0,
                   "currency": "CNY"},
    }  # fmt: skip


def wx_notification(
    event_type: str, resource: dict[str, Any], original_type: str, nonce: str
) -> dict[str, Any]:
    plaintext = _compact(resource).encode()
    resource_nonce = nonce[:12]
    sealed = AESGCM(WX_APIV3_KEY).encrypt(
        resource_nonce.encode(), plaintext, original_type.encode()
    )
    envelope = {
        "id": "EV-2026030218153300000000000000001",
        "create_time": "2026-03-02T18:15:33+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "通知",
        "resource": {
            "original_type": original_type,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(sealed).decode(),
            "associated_data": original_type,
            "nonce": resource_nonce,
        },
    }
    text = _compact(envelope)
    headers = {"Content-Type": "application/json"} | wx_signed(text, nonce=nonce)
    return {
        "description": f"A {event_type} notification as WeChat Pay POSTs it (signed; the resource "
        "sealed with the APIv3 key). Its plaintext resource is under `resource_plaintext` for "
        "readers; the body is sent as compact JSON, which is what the signature covers.",
        "source": WX_SOURCE,
        "request": {"method": "POST", "url": WX_CALLBACK, "headers": headers, "body": envelope},
        "resource_plaintext": resource,
    }


def wechatpay() -> dict[str, dict[str, Any]]:
    def one(description: str, *exchanges: dict[str, Any]) -> dict[str, Any]:
        return {"description": description, "source": WX_SOURCE, "exchanges": list(exchanges)}

    return {
        "transfer-accepted": one(
            "商家转账: WeChat Pay accepts the transfer (200, state ACCEPTED); the end comes by "
            "notification or query. Signed with the merchant key; the answer with the WeChat Pay "
            "public key (PUB_KEY_ID_…).",
            wx_exchange(
                "POST", TRANSFER, transfer_body(), 200, created("ACCEPTED"), nonce="N0000001"
            ),
        ),
        "transfer-wait-user-confirm": one(
            "The user must confirm the transfer in WeChat (user-confirmation mode): pending, with "
            "the package_info the user's app would open.",
            wx_exchange(
                "POST",
                TRANSFER,
                transfer_body(),
                200,
                created("WAIT_USER_CONFIRM", package_info="affffddafdfafddffda=="),
                nonce="N0000001",
            ),
        ),
        "transfer-success-legacy-certificate": one(
            "A transfer that completed at once, its answer signed with a legacy platform "
            "certificate (serial) instead of the public key: both verify during a rotation.",
            wx_exchange(
                "POST",
                TRANSFER,
                transfer_body(),
                200,
                created("SUCCESS"),
                nonce="N0000001",
                key=WX_PLATFORM_CERT,
                serial=WX_CERT_SERIAL,
            ),
        ),
        "transfer-rejected-not-enough": one(
            "403 NOT_ENOUGH (商户运营账户资金不足), signed: nothing was done; the payout fails.",
            wx_exchange(
                "POST",
                TRANSFER,
                transfer_body(),
                403,
                {"code": "NOT_ENOUGH", "message": "商户运营账户资金不足"},
                nonce="N0000001",
            ),
        ),
        "transfer-rejected-unsigned": one(
            "The same refusal without WeChat Pay's signature: not believed; the outcome is unknown "
            "until a (signed) status query.",
            wx_exchange(
                "POST",
                TRANSFER,
                transfer_body(),
                403,
                {"code": "NOT_ENOUGH", "message": "商户运营账户资金不足"},
                nonce="N0000001",
                signed=False,
            ),
        ),
        "transfer-system-error-then-accepted": one(
            "500 SYSTEM_ERROR (系统异常, 请使用相同参数稍后重新调用): retried under the same "
            "out_bill_no, freshly signed; the second answer is the bill.",
            wx_exchange(
                "POST",
                TRANSFER,
                transfer_body(),
                500,
                {"code": "SYSTEM_ERROR", "message": "系统异常, 请稍后重试"},
                nonce="N0000001",
            ),
            wx_exchange(
                "POST", TRANSFER, transfer_body(), 200, created("ACCEPTED"), nonce="N0000002"
            ),
        ),
        "transfer-frequency-limited": one(
            "429 FREQUENCY_LIMITED on every attempt: nothing was done, WeChat Pay is unavailable.",
            wx_exchange(
                "POST",
                TRANSFER,
                transfer_body(),
                429,
                {"code": "FREQUENCY_LIMITED", "message": "频率超限"},
                nonce="N0000001",
            ),
            wx_exchange(
                "POST",
                TRANSFER,
                transfer_body(),
                429,
                {"code": "FREQUENCY_LIMITED", "message": "频率超限"},
                nonce="N0000002",
            ),
        ),
        "transfer-unknown-code": one(
            "An error code the table does not know: never defaulted (WeChat Pay: do not retry "
            "under a new number), the outcome is unknown.",
            wx_exchange(
                "POST",
                TRANSFER,
                transfer_body(),
                400,
                {"code": "BRAND_NEW_CODE", "message": "未知错误"},
                nonce="N0000001",
            ),
        ),
        "transfer-bad-signature": one(
            "A 200 whose Wechatpay-Signature was not made by WeChat Pay's key: nothing in it is "
            "believed; the outcome is unknown.",
            wx_exchange(
                "POST",
                TRANSFER,
                transfer_body(),
                200,
                created("SUCCESS"),
                nonce="N0000001",
                key=WX_IMPOSTOR,
            ),
        ),
        "transfer-status-success": one(
            "商户单号查询转账单: the bill succeeded; its transfer_amount is checked against ours.",
            wx_exchange("GET", TRANSFER_QUERY, None, 200, bill("SUCCESS"), nonce="N0000001"),
        ),
        "transfer-status-failed": one(
            "The bill failed with fail_reason ACCOUNT_FROZEN.",
            wx_exchange(
                "GET",
                TRANSFER_QUERY,
                None,
                200,
                bill("FAIL", fail_reason="ACCOUNT_FROZEN"),
                nonce="N0000001",
            ),
        ),
        "transfer-status-not-found": one(
            "404 NOT_FOUND (记录不存在): WeChat Pay has no such bill (the request never arrived).",
            wx_exchange(
                "GET",
                TRANSFER_QUERY,
                None,
                404,
                {"code": "NOT_FOUND", "message": "记录不存在"},
                nonce="N0000001",
            ),
        ),
        "transfer-status-unknown-state": one(
            "A state outside the documented ones: never defaulted to success or failure.",
            wx_exchange("GET", TRANSFER_QUERY, None, 200, bill("MYSTERY"), nonce="N0000001"),
        ),
        "refund-processing": one(
            "退款: the payment's total from 查询订单, then 退款申请 (amounts in fen, total "
            "required); WeChat Pay answers PROCESSING (REFUND.SUCCESS follows).",
            wx_exchange(
                "GET",
                PAYMENT_QUERY,
                None,
                200,
                {
                    "appid": WX_APPID,
                    "mchid": WX_MCHID,
                    "out_trade_no": "1217752501201407033233368018",
                    "transaction_id": TRANSACTION_ID,
                    "trade_type": "JSAPI",
                    "trade_state": "SUCCESS",
                    "trade_state_desc": "支付成功",
                    "success_time": "2026-03-01T10:00:00+08:00",
                    "payer": {"openid": OPENID},
                    "amount": {
                        "total": 10000,
                        "payer_total": 10000,
                        "currency": "CNY",
                        "payer_currency": "CNY",
                    },
                },
                nonce="N0000001",
            ),
            wx_exchange(
                "POST",
                "/v3/refund/domestic/refunds",
                {
                    "out_refund_no": REFUND,
                    "amount": {"refund": 2500, "total": 10000, "currency": "CNY"},
                    "transaction_id": TRANSACTION_ID,
                    "notify_url": WX_CALLBACK,
                },
                200,
                refund_answer("PROCESSING"),
                nonce="N0000002",
            ),
        ),
        "refund-payment-not-found": one(
            "查询订单 404 ORDER_NOT_EXIST: nothing to refund.",
            wx_exchange(
                "GET",
                PAYMENT_QUERY,
                None,
                404,
                {"code": "ORDER_NOT_EXIST", "message": "订单不存在"},
                nonce="N0000001",
            ),
        ),
        "refund-status-success": one(
            "查询单笔退款: SUCCESS.",
            wx_exchange(
                "GET",
                f"/v3/refund/domestic/refunds/{REFUND}",
                None,
                200,
                refund_answer("SUCCESS") | {"success_time": "2026-03-02T18:16:00+08:00"},
                nonce="N0000001",
            ),
        ),
        "notification-transfer-success": wx_notification(
            "MCHTRANSFER.BILL.FINISHED", bill("SUCCESS"), "mch_payment", "Nq2d8Fh3kP0aB7cD9eF1gH2"
        ),
        "notification-transfer-failed": wx_notification(
            "MCHTRANSFER.BILL.FINISHED",
            bill("FAIL", fail_reason="NAME_NOT_CORRECT"),
            "mch_payment",
            "Xq2d8Fh3kP0aB7cD9eF1gH3",
        ),
        "notification-refund-success": wx_notification(
            "REFUND.SUCCESS",
            {
                "mchid": WX_MCHID,
                "out_trade_no": "1217752501201407033233368018",
                "transaction_id": TRANSACTION_ID,
                "out_refund_no": REFUND,
                "refund_id": "50000000382019052709732678859",
                "refund_status": "SUCCESS",
                "success_time": "2026-03-02T18:16:00+08:00",
                "amount": {
                    "total": 10000,
                    "refund": 2500,
                    "payer_total": 10000,
                    "payer_refund": 2500,
                },
                "user_received_account": "招商银行信用卡0403",
            },
            "refund",
            "Rq2d8Fh3kP0aB7cD9eF1gH4",
        ),
    }


# --- Alipay --------------------------------------------------------------------------------------

ALI_GATEWAY = "https://openapi.alipay.com/gateway.do"
ALI_APP_ID = "2021000100000001"
ALI_CALLBACK = "https://gateway.bank.example/v1/providers/alipay/webhooks"
ALI_SOURCE = (
    "Alipay open platform documentation (opendocs.alipay.com, docs.open.alipay.com): "
    "alipay.fund.trans.uni.transfer, alipay.fund.trans.common.query (api_28), "
    "alipay.fund.trans.order.changed, alipay.trade.refund, alipay.trade.fastpay.refund.query, "
    "公共参数, 签名与验签, 公共错误码"
)
ALI_APP = _key(FIXTURES / "alipay" / "test-keys" / "app_private_key.pem")
ALI_ALIPAY = _key(FIXTURES / "alipay" / "test-keys" / "alipay_private_key.pem")
ORDER_ID = "20260302110070000006280000001234"
PAY_FUND_ORDER_ID = "20260302110070001506280000005678"
TRADE_NO = "2026030222001400000000000001"


def _content(params: dict[str, str], *skip: str) -> str:
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in skip and params[k])


def ali_form(method: str, biz: dict[str, Any], notify_url: str | None = None) -> dict[str, str]:
    params = {
        "app_id": ALI_APP_ID,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": NOW.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S"),
        "version": "1.0",
        "biz_content": _compact(biz),
    }
    if notify_url:
        params["notify_url"] = notify_url
    params["sign"] = _sign(ALI_APP, _content(params, "sign").encode())
    return params


def ali_text(method: str, value: dict[str, Any], *, signed: bool = True) -> str:
    """An answer as Alipay writes it: the value with its own spacing, signed over those bytes."""
    raw = json.dumps(value, ensure_ascii=False)  # ", " / ": " separators: exact bytes matter
    name = method.replace(".", "_") + "_response"
    if not signed:
        return f'{{"{name}":{raw}}}'
    return f'{{"{name}":{raw},"sign":"{_sign(ALI_ALIPAY, raw.encode())}"}}'


def ali_exchange(
    method: str, biz: dict[str, Any], value: dict[str, Any], *, notify_url: str | None = None,
    signed: bool = True, status: int = 200,
) -> dict[str, Any]:  # fmt: skip
    return {
        "request": {
            "method": "POST",
            "url": ALI_GATEWAY,
            "headers": {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
            "form": ali_form(method, biz, notify_url),
        },
        "response": {
            "status": status,
            "headers": {"Content-Type": "text/html;charset=utf-8"},
            "text": ali_text(method, value, signed=signed),
        },
    }


TRANSFER_BIZ = {
    "out_biz_no": OUT_BILL_NO,
    "trans_amount": "250.00",
    "product_code": "TRANS_ACCOUNT_NO_PWD",
    "biz_scene": "DIRECT_TRANSFER",
    "order_title": "School fees",
    "payee_info": {"identity": "2088123412341234", "identity_type": "ALIPAY_USER_ID"},
    "remark": "School fees",
}
QUERY_BIZ = {
    "out_biz_no": OUT_BILL_NO,
    "product_code": "TRANS_ACCOUNT_NO_PWD",
    "biz_scene": "DIRECT_TRANSFER",
}
TRANSFER_METHOD = "alipay.fund.trans.uni.transfer"
QUERY_METHOD = "alipay.fund.trans.common.query"


def transfer_ok(status: str) -> dict[str, Any]:
    return {
        "code": "10000",
        "msg": "Success",
        "out_biz_no": OUT_BILL_NO,
        "order_id": ORDER_ID,
        "pay_fund_order_id": PAY_FUND_ORDER_ID,
        "status": status,
        "trans_date": "2026-03-02 18:15:31",
    }


def query_ok(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "code": "10000",
        "msg": "Success",
        "order_id": ORDER_ID,
        "pay_fund_order_id": PAY_FUND_ORDER_ID,
        "out_biz_no": OUT_BILL_NO,
        "trans_amount": "250.00",
        "status": status,
        "order_fee": "0.00",
        **extra,
    }


def failure(code: str, msg: str, sub_code: str, sub_msg: str) -> dict[str, str]:
    return {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}


def ali_notification(
    params: dict[str, str], *, with_sign_type: bool, description: str
) -> dict[str, Any]:
    values = {**params, "sign_type": "RSA2"}
    skip = ("sign",) if with_sign_type else ("sign", "sign_type")
    values["sign"] = _sign(ALI_ALIPAY, _content(values, *skip).encode())
    return {
        "description": description,
        "source": ALI_SOURCE,
        "request": {
            "method": "POST",
            "url": ALI_CALLBACK,
            "headers": {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            "form": values,
            "body": urlencode(values),
        },
    }


def alipay() -> dict[str, dict[str, Any]]:
    def one(description: str, *exchanges: dict[str, Any]) -> dict[str, Any]:
        return {"description": description, "source": ALI_SOURCE, "exchanges": list(exchanges)}

    refund_biz = {"refund_amount": "25.00", "out_request_no": REFUND, "trade_no": TRADE_NO}
    refund_query_biz = {"out_request_no": REFUND, "trade_no": TRADE_NO}
    return {
        "transfer-success": one(
            "单笔转账 to an Alipay user id, answered SUCCESS at once (DIRECT_TRANSFER is usually "
            "synchronous). The answer is signed over the exact bytes of its value.",
            ali_exchange(
                TRANSFER_METHOD, TRANSFER_BIZ, transfer_ok("SUCCESS"), notify_url=ALI_CALLBACK
            ),
        ),
        "transfer-dealing": one(
            "Accepted, still DEALING (处理中): the end comes by alipay.fund.trans.order.changed or "
            "by query.",
            ali_exchange(
                TRANSFER_METHOD, TRANSFER_BIZ, transfer_ok("DEALING"), notify_url=ALI_CALLBACK
            ),
        ),
        "transfer-logon-id-with-name": one(
            "To a logon id (email or mobile), which requires the holder's real name.",
            ali_exchange(
                TRANSFER_METHOD,
                TRANSFER_BIZ
                | {
                    "payee_info": {
                        "identity": "wangwei@example.com",
                        "identity_type": "ALIPAY_LOGON_ID",
                        "name": "王伟",
                    }
                },
                transfer_ok("SUCCESS"),
                notify_url=ALI_CALLBACK,
            ),
        ),
        "transfer-payee-not-exist": one(
            "40004 PAYEE_NOT_EXIST (收款账号不存在), signed: nothing was done; the payout fails.",
            ali_exchange(
                TRANSFER_METHOD,
                TRANSFER_BIZ,
                failure("40004", "Business Failed", "PAYEE_NOT_EXIST", "收款账号不存在"),
                notify_url=ALI_CALLBACK,
            ),
        ),
        "transfer-balance-not-enough": one(
            "40004 PAYER_BALANCE_NOT_ENOUGH (付款方余额不足): the bank's Alipay balance.",
            ali_exchange(
                TRANSFER_METHOD,
                TRANSFER_BIZ,
                failure("40004", "Business Failed", "PAYER_BALANCE_NOT_ENOUGH", "付款方余额不足"),
                notify_url=ALI_CALLBACK,
            ),
        ),
        "transfer-refused-unsigned": one(
            "40002 isv.invalid-signature without a sign: not believed; the outcome is unknown "
            "until a signed status query.",
            ali_exchange(
                TRANSFER_METHOD,
                TRANSFER_BIZ,
                failure("40002", "Invalid Arguments", "isv.invalid-signature", "验签出错"),
                notify_url=ALI_CALLBACK,
                signed=False,
            ),
        ),
        "transfer-service-unavailable": one(
            "20000 isp.unknow-error (服务不可用): the transfer may have been carried out; unknown.",
            ali_exchange(
                TRANSFER_METHOD,
                TRANSFER_BIZ,
                failure("20000", "Service Currently Unavailable", "isp.unknow-error", "系统繁忙"),
                notify_url=ALI_CALLBACK,
            ),
        ),
        "transfer-unknown-sub-code": one(
            "A 40004 sub_code the table does not know: never defaulted; the outcome is unknown.",
            ali_exchange(
                TRANSFER_METHOD,
                TRANSFER_BIZ,
                failure("40004", "Business Failed", "BRAND_NEW_SUB_CODE", "未知"),
                notify_url=ALI_CALLBACK,
            ),
        ),
        "transfer-query-success": one(
            "转账业务单据查询: SUCCESS with the amount (checked against ours).",
            ali_exchange(
                QUERY_METHOD, QUERY_BIZ, query_ok("SUCCESS", pay_date="2026-03-02 18:15:33")
            ),
        ),
        "transfer-query-fail": one(
            "FAIL with error_code PAYEE_ACCOUNT_STATUS_ERROR.",
            ali_exchange(
                QUERY_METHOD,
                QUERY_BIZ,
                query_ok(
                    "FAIL",
                    error_code="PAYEE_ACCOUNT_STATUS_ERROR",
                    fail_reason="收款方账户状态异常",
                ),
            ),
        ),
        "transfer-query-not-exist": one(
            "40004 ORDER_NOT_EXIST: Alipay has no such order (the request never arrived).",
            ali_exchange(
                QUERY_METHOD,
                QUERY_BIZ,
                failure("40004", "Business Failed", "ORDER_NOT_EXIST", "转账订单不存在"),
            ),
        ),
        "transfer-query-unknown-status": one(
            "A status outside the documented ones: never defaulted.",
            ali_exchange(QUERY_METHOD, QUERY_BIZ, query_ok("MYSTERY")),
        ),
        "refund-success": one(
            "统一收单交易退款 by trade_no, keyed by out_request_no: fund_change Y (money moved).",
            ali_exchange(
                "alipay.trade.refund",
                refund_biz,
                {
                    "code": "10000",
                    "msg": "Success",
                    "trade_no": TRADE_NO,
                    "out_trade_no": "sandbox-order-0001",
                    "buyer_logon_id": "159****5620",
                    "fund_change": "Y",
                    "refund_fee": "25.00",
                    "buyer_user_id": "2088101117955611",
                },
                notify_url=ALI_CALLBACK,
            ),
        ),
        "refund-repeated": one(
            "The same out_request_no again: fund_change N (no new movement), so the refund query "
            "confirms it succeeded.",
            ali_exchange(
                "alipay.trade.refund",
                refund_biz,
                {
                    "code": "10000",
                    "msg": "Success",
                    "trade_no": TRADE_NO,
                    "out_trade_no": "sandbox-order-0001",
                    "buyer_logon_id": "159****5620",
                    "fund_change": "N",
                    "refund_fee": "25.00",
                    "buyer_user_id": "2088101117955611",
                },
                notify_url=ALI_CALLBACK,
            ),
            ali_exchange(
                "alipay.trade.fastpay.refund.query",
                refund_query_biz,
                {
                    "code": "10000",
                    "msg": "Success",
                    "trade_no": TRADE_NO,
                    "out_trade_no": "sandbox-order-0001",
                    "out_request_no": REFUND,
                    "total_amount": "100.00",
                    "refund_amount": "25.00",
                    "refund_status": "REFUND_SUCCESS",
                },
            ),
        ),
        "refund-trade-not-exist": one(
            "40004 ACQ.TRADE_NOT_EXIST: nothing to refund.",
            ali_exchange(
                "alipay.trade.refund",
                refund_biz,
                failure("40004", "Business Failed", "ACQ.TRADE_NOT_EXIST", "交易不存在"),
                notify_url=ALI_CALLBACK,
            ),
        ),
        "refund-query-not-found": one(
            "退款查询 with no refund data: no such refund (not refunded).",
            ali_exchange(
                "alipay.trade.fastpay.refund.query",
                refund_query_biz,
                {
                    "code": "10000",
                    "msg": "Success",
                    "trade_no": TRADE_NO,
                    "out_trade_no": "sandbox-order-0001",
                    "out_request_no": REFUND,
                },
            ),
        ),
        "notification-transfer-changed": ali_notification(
            {
                "notify_id": "2026030200222181533000000000000001",
                "utc_timestamp": str(STAMP * 1000 + 123),
                "msg_method": "alipay.fund.trans.order.changed",
                "app_id": ALI_APP_ID,
                "version": "1.1",
                "charset": "utf-8",
                "biz_content": _compact(
                    {
                        "out_biz_no": OUT_BILL_NO,
                        "order_id": ORDER_ID,
                        "pay_fund_order_id": PAY_FUND_ORDER_ID,
                        "status": "SUCCESS",
                        "trans_amount": "250.00",
                        "pay_date": "2026-03-02 18:15:33",
                        "biz_scene": "DIRECT_TRANSFER",
                        "product_code": "TRANS_ACCOUNT_NO_PWD",
                        "origin_interface": "alipay.fund.trans.uni.transfer",
                        "action_type": "FINISH",
                    }
                ),
            },
            with_sign_type=True,
            description="The message-service notification of a transfer's end (form POST; this "
            "kind signs sign_type too). The gateway answers `success`.",
        ),
        "notification-refund": ali_notification(
            {
                "notify_time": "2026-03-02 18:16:00",
                "notify_type": "trade_status_sync",
                "notify_id": "2026030200222181600000000000000002",
                "app_id": ALI_APP_ID,
                "charset": "utf-8",
                "version": "1.0",
                "trade_no": TRADE_NO,
                "out_trade_no": "sandbox-order-0001",
                "out_biz_no": REFUND,
                "buyer_id": "2088101117955611",
                "trade_status": "TRADE_SUCCESS",
                "total_amount": "100.00",
                "refund_fee": "25.00",
                "gmt_refund": "2026-03-02 18:16:00.000",
            },
            with_sign_type=False,
            description="The asynchronous notification of a (partial) refund: trade_status_sync "
            "with out_biz_no = the refund's out_request_no (signed without sign_type).",
        ),
    }


def main() -> None:
    for provider, contracts in (("wechatpay", wechatpay()), ("alipay", alipay())):
        directory = CONTRACTS / provider
        directory.mkdir(parents=True, exist_ok=True)
        for name, document in contracts.items():
            text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
            (directory / f"{name}.json").write_text(text, encoding="utf-8")
        print(f"wrote {len(contracts)} contracts in {directory.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
