"""A sandbox of WeChat Pay API v3 (Flask) with injectable failures.

Written from WeChat Pay's documentation, not from the gateway's adapter, and importing
nothing of it. Used by `make run` (embedded on loopback), `wallet-gateway simulator wechatpay`
and the tests.

API subset: `POST /v3/fund-app/mch-transfer/transfer-bills` (商家转账; a repeated out_bill_no
returns the original bill), `GET …/transfer-bills/out-bill-no/{out_bill_no}` and
`…/transfer-bill-no/{transfer_bill_no}`, `POST /v3/refund/domestic/refunds`,
`GET /v3/refund/domestic/refunds/{out_refund_no}`, `GET /v3/pay/transactions/id/{id}` and
`…/out-trade-no/{no}`. Every request must carry a valid merchant signature (`Authorization:
WECHATPAY2-SHA256-RSA2048 …`, 5-minute window, nonces not reused); every answer is signed
with the sandbox's platform key (`Wechatpay-*` headers, its `PUB_KEY_ID_…`). Notifications
(`MCHTRANSFER.BILL.FINISHED`, `REFUND.SUCCESS`) are POSTed to the request's `notify_url`,
signed, with the resource sealed with the APIv3 key (AES-GCM).

Admin API under `/sandbox` (loopback): faults, users, transfers (confirm, for users who must
confirm), payments, callbacks, keys, reset. docs/providers/wechatpay.md lists the fault modes.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from adapters.providers.sandbox_kit import (
    CallbackRecord,
    FaultList,
    Outbox,
    SandboxControls,
    Sender,
    abort_connection,
    add_fault_routes,
    http_sender,
    json_body,
    new_rule_id,
)
from adapters.providers.wechatpay_sandbox import keys
from adapters.providers.wechatpay_sandbox.ledger import (
    Bill,
    Ledger,
    Refund,
    SandboxError,
    fingerprint,
    seed,
    stamp,
)
from gateway.domain.clock import Clock, SystemClock

PLATFORM_KEY_ID = "PUB_KEY_ID_0119000000010000000000000001"
OPERATIONS = ("transfer", "transfer_status", "refund", "refund_status", "payment")
MODES = {
    "reject": "answer `status`/`code` at once (default 400 INVALID_REQUEST); nothing created",
    "unavailable": "answer 429 FREQUENCY_LIMITED; nothing created",
    "error": "carry the request out, then answer 500 SYSTEM_ERROR",
    "timeout": "carry the request out, answer only after `seconds`",
    "drop": "carry the request out, then close the connection without an answer",
    "bad_signature": "carry the request out, answer with a signature that does not verify",
    # transfers: accepted, then ...
    "fail": "... fail with fail_reason `code` (default OTHER_FAIL_REASON_TYPE)",
    "succeed_late": "... succeed only after `seconds` (default 30)",
    "drop_callback": "... never notify (the caller must poll)",
    "duplicate_callback": "... notify twice",
    "forged_callback": "... also send a forged notification (opposite outcome, wrong key)",
}
ASYNC_MODES = {"fail", "succeed_late", "drop_callback", "duplicate_callback", "forged_callback"}
OUT_NO = re.compile(r"^[0-9A-Za-z]{1,32}$")
OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
NAME_REQUIRED_FROM = 200_000  # fen: 2,000.00 CNY


@dataclass
class FaultRule:
    operation: str
    mode: str
    times: int | None = 1
    seconds: float = 5.0
    status: int = 400
    code: str = "INVALID_REQUEST"
    openid: str | None = None
    process: bool = True
    id: str = field(default_factory=new_rule_id)

    def __post_init__(self) -> None:
        if self.operation not in (*OPERATIONS, "*"):
            raise ValueError(f"unknown operation {self.operation!r} (one of {OPERATIONS})")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r} (one of {sorted(MODES)})")
        if self.mode in ASYNC_MODES and self.operation != "transfer":
            raise ValueError(f"mode {self.mode!r} applies to transfers only")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        allowed = {"operation", "mode", "times", "seconds", "status", "code", "openid", "process"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "operation": self.operation,
            "mode": self.mode,
            "times": self.times,
            "seconds": self.seconds,
            "status": self.status,
            "code": self.code,
            "openid": self.openid,
            "process": self.process,
        }


class WechatPaySandbox(SandboxControls[FaultRule]):
    """The sandbox provider, and its Python test API."""

    rule_type = FaultRule
    server_name = "wechatpay-sandbox"

    def __init__(
        self,
        *,
        merchant_public_key: rsa.RSAPublicKey,
        apiv3_key: bytes,
        mchid: str = "1900000001",
        appid: str = "wxd678efh567hg6787",
        merchant_serial_no: str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        platform_key: rsa.RSAPrivateKey | None = None,
        platform_key_id: str = PLATFORM_KEY_ID,
        clock: Clock | None = None,
        processing_delay: float = 0.0,
        callback_delay: float = 0.0,
        callback_attempts: int = 3,
        callback_retry_seconds: float = 2.0,
        tolerance_seconds: float = 300.0,
        seed_users: bool = True,
        sender: Sender | None = None,
    ) -> None:
        if len(apiv3_key) not in (16, 24, 32):
            raise ValueError("the APIv3 key is 32 bytes (16 or 24 in tests)")
        self.clock = clock or SystemClock()
        self.ledger = Ledger(self.clock)
        self.faults: FaultList[FaultRule] = FaultList()
        self.mchid = mchid
        self.appid = appid
        self.merchant_serial_no = merchant_serial_no.upper()
        self.merchant_public_key = merchant_public_key
        self.apiv3_key = apiv3_key
        self.platform_key = platform_key or rsa.generate_private_key(65537, 2048)
        self.platform_key_id = platform_key_id
        self._forger = rsa.generate_private_key(65537, 2048)  # signs forged notifications
        self.processing_delay = timedelta(seconds=processing_delay)
        self.callback_delay = timedelta(seconds=callback_delay)
        self.tolerance = timedelta(seconds=tolerance_seconds)
        self.outbox = Outbox(
            lambda status, _body: 200 <= status < 300,
            attempts=callback_attempts,
            retry=timedelta(seconds=callback_retry_seconds),
        )
        self.sender = sender if sender is not None else http_sender()
        self.requests: dict[str, int] = {}
        self.refused: list[str] = []  # why requests failed authentication (admin API)
        self._nonces: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        if seed_users:
            seed(self.ledger)
        self.app = self._create_app()

    @classmethod
    def from_files(
        cls,
        *,
        keys_dir: Path,
        merchant_private_key_file: Path | None = None,
        publish_dir: Path | None = None,
        **options: Any,
    ) -> WechatPaySandbox:
        """A sandbox keeping its keys in `keys_dir`: the stand-in merchant key (created if
        missing; the gateway signs with it), its own platform key, and the platform public key
        published as `<publish_dir>/<PUB_KEY_ID_…>.pem` for the gateway to verify with."""
        merchant = keys.load_or_create(
            merchant_private_key_file or keys_dir / "merchant_private_key.pem"
        )
        platform = keys.load_or_create(keys_dir / "sandbox" / "platform_private_key.pem")
        key_id = options.pop("platform_key_id", PLATFORM_KEY_ID)
        keys.publish(publish_dir or keys_dir / "platform-keys", key_id, platform.public_key())
        return cls(
            merchant_public_key=merchant.public_key(),
            platform_key=platform,
            platform_key_id=key_id,
            **options,
        )

    # --- test API ------------------------------------------------------------------------------

    def balance(self, openid: str) -> int:
        """A user's WeChat balance in fen."""
        return self.ledger.users[openid].balance

    def bill(self, out_bill_no: str) -> Bill | None:
        self.settle_due()
        with self.ledger.locked():
            return self.ledger.bills.get(out_bill_no)

    def confirm(self, out_bill_no: str) -> Bill:
        """The user confirms a transfer waiting for it (WAIT_USER_CONFIRM)."""
        with self.ledger.locked():
            bill = self.ledger.bills[out_bill_no]
            if bill.state != "WAIT_USER_CONFIRM":
                raise ValueError(f"the bill is {bill.state}, not waiting for confirmation")
            bill.state = "TRANSFERING"
            bill.complete_at = self.clock.now() + self.processing_delay
            bill.updated_at = self.clock.now()
        self.settle_due()
        return bill

    def settle_due(self) -> int:
        bills, refunds = self.ledger.due()
        for bill in bills:
            self._queue_transfer_callbacks(bill)
        for refund in refunds:
            self._queue_refund_callback(refund)
        return len(bills) + len(refunds)

    def deliver_callbacks(self, sender: Sender | None = None) -> list[CallbackRecord]:
        """Settle what is due, then send every notification whose time has come."""
        self.settle_due()
        send = sender if sender is not None else self.sender

        def post(record: CallbackRecord) -> tuple[int, bytes]:
            # Every attempt is signed afresh (a retry hours later is inside the window again).
            headers = {
                **record.headers,
                **self._signed_headers(record.body, key=self._forger if record.forged else None),
            }
            return send(record.url, headers, record.body), b""

        return self.outbox.deliver(self.clock.now(), post)

    def pending_callbacks(self) -> list[CallbackRecord]:
        self.settle_due()
        return self.outbox.pending()

    # --- signatures ----------------------------------------------------------------------------

    def _signed_headers(
        self, body: bytes, *, key: rsa.RSAPrivateKey | None = None
    ) -> dict[str, str]:
        timestamp = str(int(self.clock.now().timestamp()))
        nonce = secrets.token_hex(16)
        message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"
        return {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": keys.sign(key or self.platform_key, message),
            "Wechatpay-Serial": self.platform_key_id,
        }

    def _reply(
        self, status: int, document: dict[str, Any] | None, *, broken: bool = False
    ) -> Response:
        body = json.dumps(document, ensure_ascii=False).encode() if document is not None else b""
        response = Response(body, status=status, content_type="application/json")
        headers = self._signed_headers(body, key=self._forger if broken else None)
        response.headers.update(headers)
        response.headers["Request-ID"] = "08" + secrets.token_hex(12).upper()
        return response

    def _error(self, error: SandboxError) -> Response:
        return self._reply(error.status, error.to_json())

    def _authenticate(self, body: bytes) -> None:
        """Check the merchant's request signature (401 SIGN_ERROR otherwise)."""
        fields = keys.parse_authorization(request.headers.get("Authorization", ""))
        reason = None
        if fields is None:
            reason = "missing or malformed Authorization"
        elif fields["mchid"] != self.mchid:
            reason = "unknown mchid"
        elif fields["serial_no"].upper() != self.merchant_serial_no:
            reason = "unknown merchant certificate serial"
        elif not fields["timestamp"].isdigit():
            reason = "malformed timestamp"
        else:
            moment = datetime.fromtimestamp(int(fields["timestamp"]), self.clock.now().tzinfo)
            uri = request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI")
            if not uri:
                query = request.query_string.decode()
                uri = request.path + (f"?{query}" if query else "")
            message = (
                "\n".join(
                    (request.method, uri, fields["timestamp"], fields["nonce_str"], "")
                ).encode()
                + body
                + b"\n"
            )
            if abs(self.clock.now() - moment) > self.tolerance:
                reason = "timestamp outside the 5-minute window"
            elif not keys.verifies(self.merchant_public_key, fields["signature"], message):
                reason = "signature does not verify"
            else:
                with self._lock:
                    now = self.clock.now()
                    self._nonces = {
                        n: t for n, t in self._nonces.items() if now - t <= self.tolerance
                    }
                    if fields["nonce_str"] in self._nonces:
                        reason = "nonce reused"
                    else:
                        self._nonces[fields["nonce_str"]] = now
        if reason is not None:
            with self._lock:
                self.refused.append(reason)
            raise SandboxError(401, "SIGN_ERROR", f"签名错误: {reason}")

    def _count(self, operation: str) -> None:
        with self._lock:
            self.requests[operation] = self.requests.get(operation, 0) + 1

    def _stall(self, seconds: float) -> None:
        if seconds > 0:
            self._wake.wait(seconds)

    # --- notifications -------------------------------------------------------------------------

    def _envelope(
        self, event_type: str, resource: dict[str, Any], original_type: str, summary: str
    ) -> bytes:
        plaintext = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode()
        envelope = {
            "id": str(uuid.uuid4()),
            "create_time": stamp(self.clock.now()),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": {
                "original_type": original_type,
                **keys.seal(self.apiv3_key, plaintext, original_type),
            },
        }
        return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()

    def _notification(
        self, reference: str, url: str, body: bytes, due: datetime, *, forged: bool = False
    ) -> CallbackRecord:
        headers = {
            "Content-Type": "application/json",
            **self._signed_headers(body, key=self._forger if forged else None),
        }
        return CallbackRecord(reference, url, body, headers, due, forged)

    def _queue_transfer_callbacks(self, bill: Bill) -> None:
        if not bill.notify_url or bill.callback_mode == "drop":
            return
        if bill.state not in ("SUCCESS", "FAIL", "CANCELLED"):
            return
        due = self.clock.now() + self.callback_delay
        resource = bill.to_json(self.mchid)
        body = self._envelope(
            "MCHTRANSFER.BILL.FINISHED", resource, "mch_payment", "商家转账单据终态通知"
        )
        records = [self._notification(bill.out_bill_no, bill.notify_url, body, due)]
        if bill.callback_mode == "duplicate":
            records.append(self._notification(bill.out_bill_no, bill.notify_url, body, due))
        if bill.callback_mode == "forged":
            opposite = dict(resource)
            if bill.state == "SUCCESS":
                opposite.update(state="FAIL", fail_reason="ACCOUNT_FROZEN")
            else:
                opposite.update(state="SUCCESS")
                opposite.pop("fail_reason", None)
            forged = self._envelope(
                "MCHTRANSFER.BILL.FINISHED", opposite, "mch_payment", "商家转账单据终态通知"
            )
            records.append(
                self._notification(bill.out_bill_no, bill.notify_url, forged, due, forged=True)
            )
        self.outbox.add(*records)

    def _queue_refund_callback(self, refund: Refund) -> None:
        if not refund.notify_url or refund.callback_mode == "drop":
            return
        body = refund.to_json()
        resource = {
            "mchid": self.mchid,
            "out_trade_no": body["out_trade_no"],
            "transaction_id": body["transaction_id"],
            "out_refund_no": refund.out_refund_no,
            "refund_id": refund.refund_id,
            "refund_status": refund.status,
            "success_time": body.get("success_time"),
            "amount": {
                "total": refund.payment.total,
                "refund": refund.amount,
                "payer_total": refund.payment.total,
                "payer_refund": refund.amount,
            },
            "user_received_account": body["user_received_account"],
        }
        envelope = self._envelope(f"REFUND.{refund.status}", resource, "refund", "退款成功")
        due = self.clock.now() + self.callback_delay
        self.outbox.add(self._notification(refund.out_refund_no, refund.notify_url, envelope, due))

    # --- the API -------------------------------------------------------------------------------

    def _json_body(self, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except ValueError:
            raise SandboxError(400, "PARAM_ERROR", "请求体不是JSON") from None
        if not isinstance(body, dict):
            raise SandboxError(400, "PARAM_ERROR", "请求体不是JSON对象")
        return body

    def _validate_transfer(self, body: dict[str, Any]) -> None:
        for name in ("appid", "out_bill_no", "transfer_scene_id", "openid", "transfer_amount",
                     "transfer_remark"):  # fmt: skip
            if name not in body or body[name] in (None, ""):
                raise SandboxError(400, "PARAM_ERROR", f"缺少参数 {name}")
        if not isinstance(body["out_bill_no"], str) or not OUT_NO.match(body["out_bill_no"]):
            raise SandboxError(400, "PARAM_ERROR", "out_bill_no 只能由数字、大小写字母组成")
        amount = body["transfer_amount"]
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise SandboxError(400, "PARAM_ERROR", "transfer_amount 必须为正整数 (分)")
        if len(str(body["transfer_remark"])) > 32:
            raise SandboxError(400, "PARAM_ERROR", "transfer_remark 最多32个字符")
        if not re.fullmatch(r"[0-9]{4}", str(body["transfer_scene_id"])):
            raise SandboxError(400, "PARAM_ERROR", "transfer_scene_id 无效")
        if body["appid"] != self.appid:
            raise SandboxError(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        notify = body.get("notify_url")
        if notify is not None and not str(notify).startswith(("http://", "https://")):
            raise SandboxError(400, "PARAM_ERROR", "notify_url 无效")

    def handle_transfer(self, raw: bytes) -> Response:
        self._authenticate(raw)
        body = self._json_body(raw)
        self._validate_transfer(body)
        openid = str(body["openid"])
        rule = self.faults.take("transfer", lambda r: r.openid in (None, openid))
        if rule is not None and rule.mode in ("error", "timeout", "drop") and not rule.process:
            return self._after(rule, self._error(SandboxError(500, "SYSTEM_ERROR", "系统异常")))
        if rule is not None and rule.mode == "reject":
            raise SandboxError(rule.status, rule.code, "injected")
        if rule is not None and rule.mode == "unavailable":
            raise SandboxError(429, "FREQUENCY_LIMITED", "频率超限")
        now = self.clock.now()
        out_bill_no = str(body["out_bill_no"])
        with self.ledger.locked():
            existing = self.ledger.bills.get(out_bill_no)
            if existing is not None:
                if existing.fingerprint != fingerprint(body):
                    raise SandboxError(400, "INVALID_REQUEST", "商户单号重复, 但请求参数不一致")
                bill = existing
            else:
                bill = self._create_bill(body, rule, now)
        self.settle_due()
        answer = self._reply(200, bill.created())
        if rule is not None and rule.mode in ("error", "timeout", "drop", "bad_signature"):
            return self._after(rule, answer)
        return answer

    def _create_bill(self, body: dict[str, Any], rule: FaultRule | None, now: datetime) -> Bill:
        user = self.ledger.users.get(str(body["openid"]))
        if user is None:
            raise SandboxError(400, "INVALID_REQUEST", "openid与appid不匹配")
        amount = int(body["transfer_amount"])
        name = None
        if "user_name" in body:
            if request.headers.get("Wechatpay-Serial") != self.platform_key_id:
                raise SandboxError(400, "PARAM_ERROR", "Wechatpay-Serial 与加密所用公钥不符")
            name = keys.open_sensitive(self.platform_key, str(body["user_name"]))
            if name is None:
                raise SandboxError(400, "PARAM_ERROR", "user_name 解密失败")
        elif amount >= NAME_REQUIRED_FROM:
            raise SandboxError(400, "PARAM_ERROR", "转账金额>=2000元时, 收款用户姓名必填")
        if self.ledger.merchant_balance - self.ledger.reserved() < amount:
            raise SandboxError(403, "NOT_ENOUGH", "商户运营账户资金不足")
        delay = self.processing_delay
        forced, mode = None, "normal"
        if rule is not None and rule.mode in ASYNC_MODES:
            if rule.mode == "fail":
                forced = rule.code if rule.code != "INVALID_REQUEST" else "OTHER_FAIL_REASON_TYPE"
            elif rule.mode == "succeed_late":
                delay = timedelta(seconds=rule.seconds or 30)
            else:
                mode = rule.mode.removesuffix("_callback")
        waits = not user.auto_receive
        bill = Bill(
            out_bill_no=str(body["out_bill_no"]),
            transfer_bill_no="1330000" + now.strftime("%Y%m%d") + secrets.token_hex(12)[:21],
            fingerprint=fingerprint(body),
            appid=str(body["appid"]),
            openid=user.openid,
            amount=amount,
            remark=str(body["transfer_remark"]),
            notify_url=body.get("notify_url"),
            created_at=now,
            complete_at=None if waits else now + delay,
            user_name=name,
            state="WAIT_USER_CONFIRM" if waits else "ACCEPTED",
            forced_fail=forced,
            callback_mode=mode,
        )
        self.ledger.bills[bill.out_bill_no] = bill
        return bill

    def _after(self, rule: FaultRule, answer: Response) -> Response:
        if rule.mode == "error":
            return self._error(SandboxError(500, "SYSTEM_ERROR", "系统异常, 请稍后重试"))
        if rule.mode == "timeout":
            self._stall(rule.seconds)
            return answer
        if rule.mode == "bad_signature":
            answer.headers["Wechatpay-Signature"] = keys.sign(self._forger, answer.get_data())
            return answer
        return abort_connection(request.environ)

    def _read_fault(self, operation: str) -> Response | None:
        rule = self.faults.take(operation)
        if rule is None:
            return None
        if rule.mode == "timeout":
            self._stall(rule.seconds)
            return None
        if rule.mode == "unavailable":
            return self._error(SandboxError(429, "FREQUENCY_LIMITED", "频率超限"))
        if rule.mode == "error":
            return self._error(SandboxError(500, "SYSTEM_ERROR", "系统异常"))
        if rule.mode == "reject":
            return self._error(SandboxError(rule.status, rule.code, "injected"))
        if rule.mode == "drop":
            return abort_connection(request.environ)
        if rule.mode == "bad_signature":
            return self._reply(500, {"code": "SYSTEM_ERROR", "message": "x"}, broken=True)
        return None

    def handle_refund(self, raw: bytes) -> Response:
        self._authenticate(raw)
        body = self._json_body(raw)
        refused = self._read_fault("refund")
        if refused is not None:
            return refused
        out_refund_no = body.get("out_refund_no")
        if not isinstance(out_refund_no, str) or not OUT_REFUND_NO.match(out_refund_no):
            raise SandboxError(400, "PARAM_ERROR", "out_refund_no 无效")
        amounts = body.get("amount")
        if not isinstance(amounts, dict) or not all(
            isinstance(amounts.get(k), int) and not isinstance(amounts.get(k), bool)
            for k in ("refund", "total")
        ):
            raise SandboxError(400, "PARAM_ERROR", "amount.refund / amount.total 必须为整数 (分)")
        if amounts.get("currency", "CNY") != "CNY":
            raise SandboxError(400, "PARAM_ERROR", "仅支持CNY")
        payment = self.ledger.payment(
            transaction_id=body.get("transaction_id"), out_trade_no=body.get("out_trade_no")
        )
        if payment is None:
            raise SandboxError(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        now = self.clock.now()
        with self.ledger.locked():
            existing = self.ledger.refunds.get(out_refund_no)
            if existing is not None:
                if existing.fingerprint != fingerprint(body):
                    raise SandboxError(400, "INVALID_REQUEST", "退款单号重复, 但请求参数不一致")
                return self._reply(200, existing.to_json())
            if amounts["total"] != payment.total:
                raise SandboxError(400, "PARAM_ERROR", "订单金额与原订单不一致")
            refund_amount = int(amounts["refund"])
            if refund_amount <= 0 or refund_amount > payment.total - payment.refunded:
                raise SandboxError(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
            if self.ledger.merchant_balance < refund_amount:
                raise SandboxError(403, "NOT_ENOUGH", "商户余额不足")
            refund = Refund(
                out_refund_no=out_refund_no,
                refund_id="50000" + now.strftime("%Y%m%d") + secrets.token_hex(10)[:19],
                fingerprint=fingerprint(body),
                payment=payment,
                amount=refund_amount,
                notify_url=body.get("notify_url"),
                created_at=now,
                complete_at=now + self.processing_delay,
            )
            payment.refunded += refund_amount
            self.ledger.merchant_balance -= refund_amount
            user = self.ledger.users.get(payment.openid)
            if user is not None:
                user.balance += refund_amount
            self.ledger.refunds[out_refund_no] = refund
        return self._reply(200, refund.to_json())

    # --- the Flask app -------------------------------------------------------------------------

    def _create_app(self) -> Flask:
        app = Flask("wechatpay_sandbox")
        app.config["MAX_CONTENT_LENGTH"] = 1_048_576
        sandbox = self

        @app.errorhandler(SandboxError)
        def _sandbox_error(error: SandboxError) -> Response:
            return sandbox._error(error)

        def guarded(operation: str) -> Response | None:
            sandbox._count(operation)
            sandbox._authenticate(b"")
            sandbox.settle_due()
            return sandbox._read_fault(operation)

        @app.post("/v3/fund-app/mch-transfer/transfer-bills")
        def transfer() -> Response:
            sandbox._count("transfer")
            return sandbox.handle_transfer(request.get_data())

        @app.get("/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/<out_bill_no>")
        def transfer_by_out_no(out_bill_no: str) -> Response:
            refused = guarded("transfer_status")
            if refused is not None:
                return refused
            with sandbox.ledger.locked():
                bill = sandbox.ledger.bills.get(out_bill_no)
            if bill is None:
                raise SandboxError(404, "NOT_FOUND", "记录不存在")
            return sandbox._reply(200, bill.to_json(sandbox.mchid))

        @app.get("/v3/fund-app/mch-transfer/transfer-bills/transfer-bill-no/<bill_no>")
        def transfer_by_bill_no(bill_no: str) -> Response:
            refused = guarded("transfer_status")
            if refused is not None:
                return refused
            with sandbox.ledger.locked():
                bill = next(
                    (b for b in sandbox.ledger.bills.values() if b.transfer_bill_no == bill_no),
                    None,
                )
            if bill is None:
                raise SandboxError(404, "NOT_FOUND", "记录不存在")
            return sandbox._reply(200, bill.to_json(sandbox.mchid))

        @app.post("/v3/refund/domestic/refunds")
        def refund() -> Response:
            sandbox._count("refund")
            return sandbox.handle_refund(request.get_data())

        @app.get("/v3/refund/domestic/refunds/<out_refund_no>")
        def refund_status(out_refund_no: str) -> Response:
            refused = guarded("refund_status")
            if refused is not None:
                return refused
            with sandbox.ledger.locked():
                found = sandbox.ledger.refunds.get(out_refund_no)
            if found is None:
                raise SandboxError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            return sandbox._reply(200, found.to_json())

        def payment_answer(transaction_id: str | None, out_trade_no: str | None) -> Response:
            refused = guarded("payment")
            if refused is not None:
                return refused
            if request.args.get("mchid") != sandbox.mchid:
                raise SandboxError(400, "PARAM_ERROR", "mchid 无效")
            found = sandbox.ledger.payment(transaction_id=transaction_id, out_trade_no=out_trade_no)
            if found is None:
                raise SandboxError(404, "ORDER_NOT_EXIST", "订单不存在")
            return sandbox._reply(200, found.to_json(sandbox.mchid, sandbox.appid))

        @app.get("/v3/pay/transactions/id/<transaction_id>")
        def payment_by_id(transaction_id: str) -> Response:
            return payment_answer(transaction_id, None)

        @app.get("/v3/pay/transactions/out-trade-no/<out_trade_no>")
        def payment_by_out_no(out_trade_no: str) -> Response:
            return payment_answer(None, out_trade_no)

        register_admin(app, sandbox)
        return app


# --- admin API ------------------------------------------------------------------------------------


def register_admin(app: Flask, sandbox: WechatPaySandbox) -> None:
    ledger = sandbox.ledger

    @app.errorhandler(ValueError)
    @app.errorhandler(TypeError)
    @app.errorhandler(KeyError)
    def _bad_request(exc: Exception) -> tuple[Response, int]:
        return jsonify({"error": str(exc)}), 400

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        if request.path.startswith("/sandbox"):
            return jsonify({"error": exc.description}), exc.code or 500
        code = "NOT_FOUND" if exc.code == 404 else "PARAM_ERROR"
        return sandbox._error(SandboxError(exc.code or 400, code, exc.description or code))

    body = json_body

    @app.get("/sandbox")
    def info() -> Response:
        return jsonify(
            {
                "mchid": sandbox.mchid,
                "appid": sandbox.appid,
                "platform_key_id": sandbox.platform_key_id,
                "merchant_balance_fen": ledger.merchant_balance,
                "requests": dict(sandbox.requests),
                "refused": sandbox.refused[-20:],
                "faults": [rule.to_json() for rule in sandbox.faults.rules()],
                "modes": MODES,
                "users": len(ledger.users),
                "transfers": len(ledger.bills),
            }
        )

    @app.get("/sandbox/keys")
    def public_keys() -> Response:
        pem = keys.public_pem(sandbox.platform_key.public_key()).decode()
        return jsonify({"data": [{"id": sandbox.platform_key_id, "pem": pem}]})

    add_fault_routes(app, sandbox, FaultRule.from_json)

    @app.get("/sandbox/users")
    def list_users() -> Response:
        with ledger.locked():
            return jsonify({"data": [user.to_json() for user in ledger.users.values()]})

    @app.post("/sandbox/users")
    def open_user() -> tuple[Response, int]:
        data = body()
        for required in ("openid", "name"):
            if not data.get(required):
                raise ValueError(f"{required} is required")
        user = ledger.open_user(
            str(data["openid"]),
            str(data["name"]),
            balance=int(data.get("balance_fen", 0)),
            status=str(data.get("status", "active")),
            auto_receive=bool(data.get("auto_receive", True)),
        )
        return jsonify(user.to_json()), 201

    @app.get("/sandbox/users/<openid>")
    def show_user(openid: str) -> tuple[Response, int]:
        with ledger.locked():
            user = ledger.users.get(openid)
        if user is None:
            return jsonify({"error": "no such user"}), 404
        return jsonify(user.to_json()), 200

    @app.get("/sandbox/transfers")
    def list_transfers() -> Response:
        sandbox.settle_due()
        with ledger.locked():
            bills = [bill.to_json(sandbox.mchid) for bill in ledger.bills.values()]
        return jsonify({"data": bills})

    @app.post("/sandbox/transfers/<out_bill_no>/confirm")
    def confirm(out_bill_no: str) -> Response:
        return jsonify(sandbox.confirm(out_bill_no).to_json(sandbox.mchid))

    @app.get("/sandbox/payments")
    def list_payments() -> Response:
        with ledger.locked():
            payments = [p.to_json(sandbox.mchid, sandbox.appid) for p in ledger.payments.values()]
        return jsonify({"data": payments})

    @app.post("/sandbox/payments")
    def add_payment() -> tuple[Response, int]:
        data = body()
        payment = ledger.add_payment(
            str(data["openid"]), int(data["total_fen"]), out_trade_no=data.get("out_trade_no")
        )
        return jsonify(payment.to_json(sandbox.mchid, sandbox.appid)), 201

    @app.get("/sandbox/callbacks")
    def list_callbacks() -> Response:
        return jsonify({"data": [cb.to_json() for cb in sandbox.outbox.all()]})

    @app.post("/sandbox/callbacks/deliver")
    def deliver() -> Response:
        return jsonify({"delivered": [cb.to_json() for cb in sandbox.deliver_callbacks()]})

    @app.post("/sandbox/reset")
    def reset() -> Response:
        sandbox.reset_faults()
        ledger.reset()
        seed(ledger)
        sandbox.outbox.clear()
        with sandbox._lock:
            sandbox.requests.clear()
            sandbox.refused.clear()
        return jsonify({"users": len(ledger.users)})
