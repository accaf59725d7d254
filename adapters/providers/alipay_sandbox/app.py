"""A sandbox of the Alipay OpenAPI gateway (Flask) with injectable failures.

Written from Alipay's documentation, not from the gateway's adapter, and importing nothing of
it. Used by `make run` (embedded on loopback), `wallet-gateway simulator alipay` and the tests.

`POST /gateway.do` (public parameters in the query string and/or the form body, RSA2-signed
by the application over all of them but `sign`) with the methods
`alipay.fund.trans.uni.transfer` (TRANS_ACCOUNT_NO_PWD / DIRECT_TRANSFER; a repeated out_biz_no
returns the first result), `alipay.fund.trans.common.query`, `alipay.trade.refund` and
`alipay.trade.fastpay.refund.query`. Answers are `{"<method>_response": {...}, "sign": "..."}`
signed over the exact text of the value (written with spaces, so a verifier that re-serializes
fails). Transfers with a processing delay answer DEALING and settle later. Notifications are
POSTed as forms to the call's `notify_url`: `alipay.fund.trans.order.changed` for transfers
(signed with `sign_type` in the content), `trade_status_sync` for refunds (signed without),
until the receiver answers `success`.

Certificate mode (公钥证书, `certificates` given; `certs.py`): a request must carry the signed
public parameters `app_cert_sn` (the SN of the application certificate) and
`alipay_root_cert_sn` (the SNs of the root chain's RSA certificates); a missing or wrong one is
refused unsigned with Alipay's `40002` and `isv.missing-app-cert-sn`, `isv.app-cert-not-exist`,
`isv.missing-alipay-root-cert-sn` or `isv.invalid-alipay-root-cert-sn`. The signature is checked
with the application certificate's key, and answers carry `alipay_cert_sn`, the SN of the
Alipay certificate whose key signed them (which `rotate_alipay_certificate` replaces).

Admin API under `/sandbox` (loopback): faults, accounts, transfers, trades, callbacks, keys,
certificates, reset. docs/providers/alipay.md lists the fault modes.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from adapters.providers.alipay_sandbox import certs, keys
from adapters.providers.alipay_sandbox.ledger import (
    CST,
    BusinessError,
    Ledger,
    Order,
    Trade,
    beijing,
    fen,
    fingerprint,
    seed,
    yuan,
)
from adapters.providers.sandbox_kit import (
    CallbackRecord,
    FaultList,
    Outbox,
    SandboxControls,
    abort_connection,
    add_fault_routes,
    json_body,
    new_rule_id,
)
from gateway.domain.clock import Clock, SystemClock

METHODS = {
    "alipay.fund.trans.uni.transfer": "transfer",
    "alipay.fund.trans.common.query": "transfer_query",
    "alipay.trade.refund": "refund",
    "alipay.trade.fastpay.refund.query": "refund_query",
}
OPERATIONS = tuple(METHODS.values())
MODES = {
    "reject": "answer `code`/`sub_code` at once (default 40004 PAYEE_NOT_EXIST); nothing done",
    "unavailable": "answer HTTP 503; nothing done",
    "error": "carry the request out, then answer 20000 isp.unknow-error",
    "timeout": "carry the request out, answer only after `seconds`",
    "drop": "carry the request out, then close the connection without an answer",
    "bad_signature": "carry the request out, answer with a signature that does not verify",
    # transfers: accepted (DEALING), then ...
    "fail": "... fail with error_code `sub_code` (default PAYEE_ACCOUNT_STATUS_ERROR)",
    "succeed_late": "... succeed only after `seconds` (default 30)",
    "drop_callback": "... never notify (the caller must poll)",
    "duplicate_callback": "... notify twice",
    "forged_callback": "... also send a forged notification (opposite outcome, wrong key)",
}
ASYNC_MODES = {"fail", "succeed_late", "drop_callback", "duplicate_callback", "forged_callback"}
OUT_NO = re.compile(r"^[0-9A-Za-z_]{1,64}$")
IDENTITY_TYPES = ("ALIPAY_USER_ID", "ALIPAY_OPEN_ID", "ALIPAY_LOGON_ID")
MIN_TRANSFER = 10  # fen: 0.10 CNY
TIMESTAMP_WINDOW = timedelta(minutes=30)


@dataclass
class FaultRule:
    operation: str
    mode: str
    times: int | None = 1
    seconds: float = 5.0
    code: str = "40004"
    sub_code: str = "PAYEE_NOT_EXIST"
    identity: str | None = None
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
        allowed = {"operation", "mode", "times", "seconds", "code", "sub_code", "identity",
                   "process"}  # fmt: skip
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
            "code": self.code,
            "sub_code": self.sub_code,
            "identity": self.identity,
            "process": self.process,
        }


class _Refusal(Exception):
    """A protocol-level refusal answered without a signature (the caller's fault)."""

    def __init__(self, method: str, error: BusinessError) -> None:
        super().__init__(error.sub_code)
        self.method, self.error = method, error


def form_sender(timeout: float = 5.0) -> Any:
    """Deliver notifications over HTTP; returns (status, body)."""
    import requests

    session = requests.Session()
    session.trust_env = False

    def send(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        response = session.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
        return response.status_code, response.content

    return send


class AlipaySandbox(SandboxControls[FaultRule]):
    """The sandbox provider, and its Python test API."""

    rule_type = FaultRule
    server_name = "alipay-sandbox"

    def __init__(
        self,
        *,
        app_public_key: rsa.RSAPublicKey,
        app_id: str = "2021000100000001",
        alipay_key: rsa.RSAPrivateKey | None = None,
        clock: Clock | None = None,
        processing_delay: float = 0.0,
        callback_delay: float = 0.0,
        callback_attempts: int = 3,
        callback_retry_seconds: float = 2.0,
        seed_accounts: bool = True,
        sender: Any = None,
        certificates: certs.Certificates | None = None,
    ) -> None:
        """`certificates`: run in certificate mode (the application certificate's key then
        checks the signatures, and `alipay_key` must be the Alipay certificate's)."""
        self.clock = clock or SystemClock()
        self.ledger = Ledger(self.clock)
        self.faults: FaultList[FaultRule] = FaultList()
        self.app_id = app_id
        self.app_public_key = app_public_key
        self.alipay_key = alipay_key or rsa.generate_private_key(65537, 2048)
        self.certificates = certificates
        self.certs_dir: Path | None = None  # where from_files publishes the certificates
        self.alipay_certs_dir: Path | None = None  # and the Alipay certificates (rotations)
        if certificates is not None:
            self.app_public_key = certificates.app_public_key()
            if not certs.certifies(certificates.alipay_certificate, self.alipay_key.public_key()):
                raise ValueError("the Alipay certificate is not for the sandbox's Alipay key")
        self._forger = rsa.generate_private_key(65537, 2048)
        self.processing_delay = timedelta(seconds=processing_delay)
        self.callback_delay = timedelta(seconds=callback_delay)
        self.outbox = Outbox(
            lambda status, body: status == 200 and body.strip() == b"success",
            attempts=callback_attempts,
            retry=timedelta(seconds=callback_retry_seconds),
        )
        self.sender = sender if sender is not None else form_sender()
        self.requests: dict[str, int] = {}
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        if seed_accounts:
            seed(self.ledger)
        self.app = self._create_app()

    @classmethod
    def from_files(
        cls,
        *,
        keys_dir: Path,
        app_private_key_file: Path | None = None,
        publish_dir: Path | None = None,
        app_id: str = "2021000100000001",
        certificate_mode: bool = False,
        certs_dir: Path | None = None,
        app_cert_file: Path | None = None,
        alipay_root_cert_file: Path | None = None,
        alipay_certs_dir: Path | None = None,
        **options: Any,
    ) -> AlipaySandbox:
        """A sandbox keeping its keys in `keys_dir`: the stand-in application key (created if
        missing; the gateway signs with it), its own Alipay key, and the Alipay public key
        published as `<publish_dir>/alipay_public_key.pem` for the gateway to verify with.

        `certificate_mode`: instead, its certification authority (`<keys_dir>/sandbox/ca/`,
        created if missing) and the console's files published as `app_cert_file`,
        `alipay_root_cert_file` and `<alipay_certs_dir>/alipayCertPublicKey_RSA2.crt` (the
        gateway passes its own paths). Standalone, they default to `certs_dir` (default
        `<keys_dir>/certs`): `appCertPublicKey_<APPID>.crt` (an existing one for the application
        key is accepted, else one is issued), `alipayRootCert.crt` and
        `alipay-certs/alipayCertPublicKey_RSA2.crt`."""
        app_key = keys.load_or_create(app_private_key_file or keys_dir / "app_private_key.pem")
        alipay = keys.load_or_create(keys_dir / "sandbox" / "alipay_private_key.pem")
        if not certificate_mode:
            keys.publish(
                publish_dir or keys_dir / "alipay-public-keys",
                "alipay_public_key.pem",
                alipay.public_key(),
            )
            return cls(
                app_public_key=app_key.public_key(), alipay_key=alipay, app_id=app_id, **options
            )
        target = certs_dir or keys_dir / "certs"
        pki = certs.Pki.load_or_create(keys_dir / "sandbox" / "ca")
        app_file = app_cert_file or target / f"appCertPublicKey_{app_id}.crt"
        root_file = alipay_root_cert_file or target / certs.ROOT_FILE
        alipay_dir = alipay_certs_dir or target / "alipay-certs"
        alipay_file = alipay_dir / certs.ALIPAY_CERT_FILE
        bundle = certs.Certificates(
            pki,
            certs.reuse(app_file, app_key.public_key())
            or pki.app_certificate(app_id, app_key.public_key()),
            certs.reuse(alipay_file, alipay.public_key())
            or pki.alipay_certificate(alipay.public_key()),
        )
        files = bundle.files(app_id)
        certs.write_file(app_file, files[f"appCertPublicKey_{app_id}.crt"])
        certs.write_file(root_file, files[certs.ROOT_FILE])
        certs.write_file(alipay_file, files[certs.ALIPAY_CERT_FILE])
        sandbox = cls(
            app_public_key=app_key.public_key(),
            alipay_key=alipay,
            app_id=app_id,
            certificates=bundle,
            **options,
        )
        sandbox.certs_dir = target
        sandbox.alipay_certs_dir = alipay_dir
        return sandbox

    def rotate_alipay_certificate(self) -> str:
        """Certificate mode: sign with a new Alipay key and certificate from now on (the new
        certificate is published next to the old one, as a rotation is done); its SN."""
        if self.certificates is None:
            raise ValueError("the sandbox is not in certificate mode")
        key = rsa.generate_private_key(65537, 2048)
        with self._lock:
            certificate = self.certificates.rotate(key.public_key())
            self.alipay_key = key
        serial = certs.cert_sn(certificate)
        if self.alipay_certs_dir is not None:
            certs.write_file(
                self.alipay_certs_dir / f"alipayCertPublicKey_RSA2_{serial[:8]}.crt",
                certs.pem(certificate, self.certificates.pki.class2.certificate),
            )
        return serial

    # --- test API ------------------------------------------------------------------------------

    def balance(self, user_id: str) -> int:
        """An account's balance in fen."""
        return self.ledger.accounts[user_id].balance

    def order(self, out_biz_no: str) -> Order | None:
        self.settle_due()
        with self.ledger.locked():
            return self.ledger.orders.get(out_biz_no)

    def settle_due(self) -> int:
        settled = self.ledger.due()
        for order in settled:
            self._queue_transfer_callbacks(order)
        return len(settled)

    def deliver_callbacks(self, sender: Any = None) -> list[CallbackRecord]:
        """Settle what is due, then send every notification whose time has come.

        `sender(url, headers, body)` returns (status, body) or just the status."""
        self.settle_due()
        send = sender if sender is not None else self.sender

        def post(record: CallbackRecord) -> tuple[int, bytes]:
            answer = send(record.url, dict(record.headers), record.body)
            return answer if isinstance(answer, tuple) else (int(answer), b"")

        return self.outbox.deliver(self.clock.now(), post)

    def pending_callbacks(self) -> list[CallbackRecord]:
        self.settle_due()
        return self.outbox.pending()

    # --- answers and notifications -------------------------------------------------------------

    def _answer(self, method: str, value: dict[str, Any], *, broken: bool = False) -> Response:
        text = json.dumps(value, ensure_ascii=False)  # Alipay's spacing is not ours to assume
        with self._lock:  # the key and its certificate's SN together (a rotation swaps both)
            key = self.alipay_key
            cert_sn = self.certificates.alipay_cert_sn if self.certificates is not None else None
        signature = keys.sign(self._forger if broken else key, text)
        name = method.replace(".", "_") + "_response"
        serial = f'"alipay_cert_sn":"{cert_sn}",' if cert_sn else ""
        body = f'{{"{name}":{text},{serial}"sign":"{signature}"}}'
        return Response(body.encode(), status=200, content_type="text/html;charset=utf-8")

    def _unsigned(self, method: str, error: BusinessError) -> Response:
        name = method.replace(".", "_") + "_response" if method in METHODS else "error_response"
        body = json.dumps({name: error.to_json()}, ensure_ascii=False)
        return Response(body.encode(), status=200, content_type="text/html;charset=utf-8")

    def _form(self, params: dict[str, str], *, with_sign_type: bool, forged: bool = False) -> bytes:
        values = {**params, "charset": "utf-8", "sign_type": "RSA2"}
        skipped = ("sign",) if with_sign_type else ("sign", "sign_type")
        content = keys.signed_content(values, *skipped)
        values["sign"] = keys.sign(self._forger if forged else self.alipay_key, content)
        return urlencode(values).encode()

    def _record(
        self, reference: str, url: str, body: bytes, *, forged: bool = False
    ) -> CallbackRecord:
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        due = self.clock.now() + self.callback_delay
        return CallbackRecord(reference, url, body, headers, due, forged)

    def _changed(self, biz: dict[str, Any], *, forged: bool = False) -> bytes:
        params = {
            "notify_id": secrets.token_hex(16),
            "utc_timestamp": str(int(self.clock.now().timestamp() * 1000)),
            "msg_method": "alipay.fund.trans.order.changed",
            "app_id": self.app_id,
            "version": "1.1",
            "biz_content": json.dumps(biz, ensure_ascii=False),
        }
        return self._form(params, with_sign_type=True, forged=forged)

    def _queue_transfer_callbacks(self, order: Order) -> None:
        if not order.notify_url or order.callback_mode == "drop":
            return
        if order.status not in ("SUCCESS", "FAIL"):
            return
        body = self._changed(order.changed())
        records = [self._record(order.out_biz_no, order.notify_url, body)]
        if order.callback_mode == "duplicate":
            records.append(self._record(order.out_biz_no, order.notify_url, body))
        if order.callback_mode == "forged":
            opposite = order.changed()
            if order.status == "SUCCESS":
                opposite.update(status="FAIL", error_code="PAYEE_ACCOUNT_STATUS_ERROR")
            else:
                opposite.update(status="SUCCESS")
                opposite.pop("error_code", None)
                opposite.pop("fail_reason", None)
            forged = self._changed(opposite, forged=True)
            records.append(self._record(order.out_biz_no, order.notify_url, forged, forged=True))
        self.outbox.add(*records)

    def _queue_refund_callback(self, trade: Trade, out_request_no: str, url: str | None) -> None:
        if not url:
            return
        now = self.clock.now()
        params = {
            "notify_time": beijing(now),
            "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(16),
            "app_id": self.app_id,
            "version": "1.0",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "out_biz_no": out_request_no,
            "buyer_id": trade.buyer.user_id,
            "trade_status": "TRADE_CLOSED" if trade.refunded == trade.total else "TRADE_SUCCESS",
            "total_amount": yuan(trade.total),
            "refund_fee": yuan(trade.refunded),
            "gmt_refund": now.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S.000"),
        }
        self.outbox.add(self._record(out_request_no, url, self._form(params, with_sign_type=False)))

    # --- the gateway endpoint ------------------------------------------------------------------

    def _params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        for source in (request.args, request.form):
            for name in source:
                values = source.getlist(name)
                if len(values) != 1 or name in params:
                    raise _Refusal(
                        "", BusinessError("isv.invalid-parameter", f"{name} 重复", code="40002")
                    )
                params[name] = values[0]
        return params

    def _authenticate(self, params: dict[str, str]) -> tuple[str, dict[str, Any]]:
        method = params.get("method", "")
        refuse = lambda sub_code, message, code="40002": _Refusal(  # noqa: E731
            method, BusinessError(sub_code, message, code=code)
        )
        if method not in METHODS:
            raise refuse("isv.invalid-method", "不存在的方法名")
        if params.get("app_id") != self.app_id:
            raise refuse("isv.invalid-app-id", "无效的AppID参数")
        if params.get("sign_type") != "RSA2":
            raise refuse("isv.invalid-signature-type", "无效的签名类型")
        if (
            params.get("charset", "utf-8").lower() != "utf-8"
            or params.get("format", "JSON") != "JSON"
        ):
            raise refuse("isv.invalid-parameter", "仅支持 utf-8 与 JSON")
        try:
            moment = datetime.strptime(params.get("timestamp", ""), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise refuse("isv.invalid-timestamp", "非法的时间戳参数") from None
        if abs(self.clock.now() - moment.replace(tzinfo=CST)) > TIMESTAMP_WINDOW:
            raise refuse("isv.invalid-timestamp", "时间戳超出允许范围")
        if self.certificates is not None:
            self._check_certificates(params, refuse)
        signature = params.get("sign", "")
        if not keys.verifies(self.app_public_key, signature, keys.signed_content(params, "sign")):
            with self._lock:
                self.refused.append("signature does not verify")
            raise refuse("isv.invalid-signature", "验签出错")
        try:
            biz = json.loads(params.get("biz_content", ""))
        except ValueError:
            raise refuse("isv.invalid-parameter", "biz_content 不是JSON") from None
        if not isinstance(biz, dict):
            raise refuse("isv.invalid-parameter", "biz_content 不是JSON对象")
        return method, biz

    def _check_certificates(self, params: dict[str, str], refuse: Any) -> None:
        """Certificate mode: the SNs the application sends name its certificate and the root
        chain it trusts (checked before the signature, which the first one selects)."""
        assert self.certificates is not None
        checks = (
            ("app_cert_sn", self.certificates.app_cert_sn,
             ("isv.missing-app-cert-sn", "缺少应用公钥证书序列号"),
             ("isv.app-cert-not-exist", "应用公钥证书不存在")),
            ("alipay_root_cert_sn", self.certificates.alipay_root_cert_sn,
             ("isv.missing-alipay-root-cert-sn", "缺少支付宝根证书序列号"),
             ("isv.invalid-alipay-root-cert-sn", "无效的支付宝根证书序列号")),
        )  # fmt: skip
        for name, expected, missing, wrong in checks:
            sent = params.get(name)
            if sent == expected:
                continue
            with self._lock:
                self.refused.append(f"{name} {'missing' if not sent else 'does not match'}")
            raise refuse(*(wrong if sent else missing))

    def handle(self) -> Response:
        method = ""
        try:
            params = self._params()
            method = params.get("method", "")
            method, biz = self._authenticate(params)
        except _Refusal as refusal:
            return self._unsigned(refusal.method or method, refusal.error)
        operation = METHODS[method]
        with self._lock:
            self.requests[operation] = self.requests.get(operation, 0) + 1
        self.settle_due()
        identity = (
            (biz.get("payee_info") or {}).get("identity") if operation == "transfer" else None
        )
        rule = self.faults.take(operation, lambda r: r.identity in (None, identity))
        if rule is not None and rule.mode == "unavailable":
            return Response(b"<html>503 Service Unavailable</html>", status=503)
        if rule is not None and rule.mode in ("error", "timeout", "drop") and not rule.process:
            lost = self._answer(
                method, BusinessError("isp.unknow-error", "系统繁忙", code="20000").to_json()
            )
            return self._after(rule, method, lost)
        if rule is not None and rule.mode == "reject":
            return self._answer(
                method, BusinessError(rule.sub_code, "injected", code=rule.code).to_json()
            )
        notify_url = params.get("notify_url") or None
        try:
            if operation == "transfer":
                value = self._transfer(biz, notify_url, rule)
            elif operation == "transfer_query":
                value = self._transfer_query(biz)
            elif operation == "refund":
                value = self._refund(biz, notify_url)
            else:
                value = self._refund_query(biz)
        except BusinessError as error:
            value = error.to_json()
        answer = self._answer(method, value)
        if rule is not None and rule.mode in ("error", "timeout", "drop", "bad_signature"):
            return self._after(rule, method, answer, value)
        return answer

    def _after(
        self, rule: FaultRule, method: str, answer: Response, value: dict[str, Any] | None = None
    ) -> Response:
        if rule.mode == "error":
            return self._answer(
                method, BusinessError("isp.unknow-error", "系统繁忙", code="20000").to_json()
            )
        if rule.mode == "timeout":
            self._wake.wait(rule.seconds)
            return answer
        if rule.mode == "bad_signature":
            return self._answer(method, value or {}, broken=True)
        return abort_connection(request.environ)

    def _transfer(
        self, biz: dict[str, Any], notify_url: str | None, rule: FaultRule | None
    ) -> dict[str, Any]:
        out_biz_no = biz.get("out_biz_no")
        if not isinstance(out_biz_no, str) or not OUT_NO.match(out_biz_no):
            raise BusinessError("INVALID_PARAMETER", "out_biz_no 无效")
        if (
            biz.get("product_code") != "TRANS_ACCOUNT_NO_PWD"
            or biz.get("biz_scene") != "DIRECT_TRANSFER"
        ):
            raise BusinessError("INVALID_PARAMETER", "product_code / biz_scene 无效")
        if not biz.get("order_title"):
            raise BusinessError("INVALID_PARAMETER", "order_title 必填")
        amount = fen(biz.get("trans_amount"))
        if amount is None or not re.fullmatch(r"[0-9]+\.[0-9]{2}", str(biz.get("trans_amount"))):
            raise BusinessError("INVALID_PARAMETER", "trans_amount 需为两位小数的金额 (元)")
        payee = biz.get("payee_info")
        if not isinstance(payee, dict) or payee.get("identity_type") not in IDENTITY_TYPES:
            raise BusinessError("INVALID_PARAMETER", "payee_info 无效")
        now = self.clock.now()
        with self.ledger.locked():
            existing = self.ledger.orders.get(out_biz_no)
            if existing is not None:
                if existing.fingerprint != fingerprint(biz):
                    raise BusinessError("INVALID_PARAMETER", "out_biz_no 重复且参数不一致")
                return existing.answer()
            if amount < MIN_TRANSFER:
                raise BusinessError("EXCEED_LIMIT_SM_MIN_AMOUNT", "单笔最低转账金额0.1元")
            identity_type = str(payee["identity_type"])
            account = self.ledger.find(identity_type, str(payee.get("identity", "")))
            if account is None:
                raise BusinessError("PAYEE_NOT_EXIST", "收款账号不存在")
            name = payee.get("name")
            if identity_type == "ALIPAY_LOGON_ID" and not name:
                raise BusinessError("PAYEE_USER_INFO_ERROR", "收款方为登录号时姓名必填")
            if name is not None and name != account.name:
                raise BusinessError("PAYEE_USER_INFO_ERROR", "收款用户姓名或其它信息不一致")
            if account.status == "uncertified":
                raise BusinessError("PAYEE_NOT_RELNAME_CERTIFY", "收款方未实名认证")
            if account.status != "active":
                raise BusinessError("PAYEE_ACCOUNT_STATUS_ERROR", "收款方账户状态异常")
            if self.ledger.merchant_balance < amount:
                raise BusinessError("PAYER_BALANCE_NOT_ENOUGH", "付款方余额不足")
            delay = self.processing_delay
            forced, mode = None, "normal"
            if rule is not None and rule.mode in ASYNC_MODES:
                if rule.mode == "fail":
                    forced = (
                        rule.sub_code
                        if rule.sub_code != "PAYEE_NOT_EXIST"
                        else "PAYEE_ACCOUNT_STATUS_ERROR"
                    )
                elif rule.mode == "succeed_late":
                    delay = timedelta(seconds=rule.seconds or 30)
                else:
                    mode = rule.mode.removesuffix("_callback")
            order = Order(
                out_biz_no=out_biz_no,
                order_id=now.strftime("%Y%m%d") + "110070000" + secrets.token_hex(6)[:11],
                pay_fund_order_id=now.strftime("%Y%m%d") + "110070001" + secrets.token_hex(6)[:11],
                fingerprint=fingerprint(biz),
                account=account,
                identity_type=identity_type,
                amount=amount,
                notify_url=notify_url,
                created_at=now,
                complete_at=now + delay,
                name=name,
                forced_fail=forced,
                callback_mode=mode,
            )
            self.ledger.orders[out_biz_no] = order
        if delay <= timedelta(0):
            self.settle_due()  # DIRECT_TRANSFER is synchronous when nothing holds it up
        return order.answer()

    def _transfer_query(self, biz: dict[str, Any]) -> dict[str, Any]:
        with self.ledger.locked():
            order = self.ledger.orders.get(str(biz.get("out_biz_no", "")))
            if order is None and biz.get("order_id"):
                order = next(
                    (o for o in self.ledger.orders.values() if o.order_id == biz["order_id"]), None
                )
        if order is None:
            raise BusinessError("ORDER_NOT_EXIST", "转账订单不存在")
        return order.query()

    def _refund(self, biz: dict[str, Any], notify_url: str | None) -> dict[str, Any]:
        trade = self.ledger.trade(
            trade_no=biz.get("trade_no"), out_trade_no=biz.get("out_trade_no")
        )
        if trade is None:
            raise BusinessError("ACQ.TRADE_NOT_EXIST", "交易不存在")
        amount = fen(biz.get("refund_amount"))
        if amount is None or amount <= 0:
            raise BusinessError("ACQ.INVALID_PARAMETER", "refund_amount 无效")
        request_no = str(biz.get("out_request_no") or trade.out_trade_no)
        with self.ledger.locked():
            previous = trade.refunds.get(request_no)
            if previous is not None:
                if previous != amount:
                    raise BusinessError(
                        "ACQ.DISCORDANT_REPEAT_REQUEST", "退款请求号重复但金额不一致"
                    )
                return self._refund_answer(trade, fund_change="N")
            if trade.refunded + amount > trade.total:
                raise BusinessError("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
            if self.ledger.merchant_balance < amount:
                raise BusinessError("ACQ.SELLER_BALANCE_NOT_ENOUGH", "卖家余额不足")
            trade.refunds[request_no] = amount
            trade.refunded += amount
            self.ledger.merchant_balance -= amount
            trade.buyer.balance += amount
        self._queue_refund_callback(trade, request_no, notify_url)
        return self._refund_answer(trade, fund_change="Y")

    def _refund_answer(self, trade: Trade, *, fund_change: str) -> dict[str, Any]:
        logon = trade.buyer.logon_ids[0] if trade.buyer.logon_ids else trade.buyer.user_id
        return {
            "code": "10000",
            "msg": "Success",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_logon_id": logon[:3] + "***" + logon[-4:],
            "fund_change": fund_change,
            "refund_fee": yuan(trade.refunded),
            "buyer_user_id": trade.buyer.user_id,
        }

    def _refund_query(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self.ledger.trade(
            trade_no=biz.get("trade_no"), out_trade_no=biz.get("out_trade_no")
        )
        if trade is None:
            raise BusinessError("ACQ.TRADE_NOT_EXIST", "交易不存在")
        request_no = str(biz.get("out_request_no", ""))
        value: dict[str, Any] = {
            "code": "10000",
            "msg": "Success",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "out_request_no": request_no,
        }
        with self.ledger.locked():
            amount = trade.refunds.get(request_no)
        if amount is not None:
            value.update(
                total_amount=yuan(trade.total),
                refund_amount=yuan(amount),
                refund_status="REFUND_SUCCESS",
            )
        return value

    # --- the Flask app -------------------------------------------------------------------------

    def _create_app(self) -> Flask:
        app = Flask("alipay_sandbox")
        app.config["MAX_CONTENT_LENGTH"] = 1_048_576
        sandbox = self

        @app.post("/gateway.do")
        def gateway() -> Response:
            return sandbox.handle()

        @app.post("/")
        def root() -> Response:
            return sandbox.handle()

        register_admin(app, sandbox)
        return app


# --- admin API ------------------------------------------------------------------------------------


def register_admin(app: Flask, sandbox: AlipaySandbox) -> None:
    ledger = sandbox.ledger

    @app.errorhandler(ValueError)
    @app.errorhandler(TypeError)
    @app.errorhandler(KeyError)
    def _bad_request(exc: Exception) -> tuple[Response, int]:
        return jsonify({"error": str(exc)}), 400

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        return jsonify({"error": exc.description}), exc.code or 500

    body = json_body

    @app.get("/sandbox")
    def info() -> Response:
        return jsonify(
            {
                "app_id": sandbox.app_id,
                "merchant_balance": yuan(ledger.merchant_balance),
                "requests": dict(sandbox.requests),
                "refused": sandbox.refused[-20:],
                "faults": [rule.to_json() for rule in sandbox.faults.rules()],
                "modes": MODES,
                "accounts": len(ledger.accounts),
                "transfers": len(ledger.orders),
            }
        )

    @app.get("/sandbox/keys")
    def public_keys() -> Response:
        pem = keys.public_pem(sandbox.alipay_key.public_key()).decode()
        found: dict[str, Any] = {"alipay_public_key": pem}
        bundle = sandbox.certificates
        if bundle is not None:
            found["certificates"] = {
                "app_cert_sn": bundle.app_cert_sn,
                "alipay_root_cert_sn": bundle.alipay_root_cert_sn,
                "alipay_cert_sn": bundle.alipay_cert_sn,
                "files": {
                    name: data.decode() for name, data in bundle.files(sandbox.app_id).items()
                },
            }
        return jsonify(found)

    @app.post("/sandbox/certificates/rotate")
    def rotate_certificate() -> Response:
        return jsonify({"alipay_cert_sn": sandbox.rotate_alipay_certificate()})

    add_fault_routes(app, sandbox, FaultRule.from_json)

    @app.get("/sandbox/accounts")
    def list_accounts() -> Response:
        with ledger.locked():
            return jsonify({"data": [a.to_json() for a in ledger.accounts.values()]})

    @app.post("/sandbox/accounts")
    def open_account() -> tuple[Response, int]:
        data = body()
        for required in ("user_id", "name"):
            if not data.get(required):
                raise ValueError(f"{required} is required")
        account = ledger.open_account(
            str(data["user_id"]),
            str(data["name"]),
            logon_ids=tuple(str(x) for x in data.get("logon_ids", [])),
            balance=fen(str(data.get("balance", "0.00"))) or 0,
            status=str(data.get("status", "active")),
        )
        return jsonify(account.to_json()), 201

    @app.get("/sandbox/accounts/<user_id>")
    def show_account(user_id: str) -> tuple[Response, int]:
        with ledger.locked():
            account = ledger.accounts.get(user_id)
        if account is None:
            return jsonify({"error": "no such account"}), 404
        return jsonify(account.to_json()), 200

    @app.get("/sandbox/transfers")
    def list_transfers() -> Response:
        sandbox.settle_due()
        with ledger.locked():
            return jsonify({"data": [o.query() for o in ledger.orders.values()]})

    @app.post("/sandbox/trades")
    def add_trade() -> tuple[Response, int]:
        data = body()
        total = fen(str(data.get("total_amount", "")))
        if not total:
            raise ValueError("total_amount (yuan, e.g. '100.00') is required")
        trade = ledger.add_trade(str(data["user_id"]), total, out_trade_no=data.get("out_trade_no"))
        return jsonify(
            {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
             "total_amount": yuan(trade.total)}
        ), 201  # fmt: skip

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
        return jsonify({"accounts": len(ledger.accounts)})
