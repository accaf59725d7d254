"""HTTP to WeChat Pay API v3, and nothing else.

Every request is signed (`Authorization: WECHATPAY2-SHA256-RSA2048 …`, a fresh timestamp and
nonce per attempt) and sent under the shared retry policy (`adapters.http.send_with_retries`)
with explicit timeouts; every answer's `Wechatpay-*` signature is checked against the platform
keys before its body is believed. What answers mean is `mapping.py`'s business.

* Reads are replay-safe; so are the transfer and refund POSTs, because WeChat Pay answers a
  repeated `out_bill_no` / `out_refund_no` with the original (no second movement of money).
* Not reached (refused, connect timeout) -> `ProviderUnavailable`; a read timeout on a POST ->
  `ProviderTimeout`; a connection lost after sending a POST -> `ProviderOutcomeUnknown`.
* A 2xx answer without a valid signature is not believed: `ProviderOutcomeUnknown`
  (`provider_bad_signature`); an error answer carries `verified` so the adapter believes a
  refusal only when WeChat Pay signed it.
* Logs name the operation, status, WeChat Pay's `Request-ID` and the duration; never a body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.base import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderTimeout,
    ProviderUnavailable,
)
from adapters.http import RetryPolicy, Timeouts, log_retries, nothing_sent, send_with_retries
from adapters.providers.rsa_keys import KeyRing
from adapters.providers.wechatpay import signing
from gateway.domain.clock import Clock
from gateway.observability.context import outgoing_headers
from gateway.observability.logging import get_logger
from gateway.observability.metrics import PROVIDER_CALLS, PROVIDER_LATENCY

log = get_logger("adapters.providers.wechatpay")
PROVIDER = "wechatpay"


@dataclass(frozen=True)
class Answer:
    """One answer: status, JSON object (None if absent or not an object), whether WeChat Pay's
    signature on it checked out (and why not)."""

    status: int
    body: dict[str, Any] | None
    verified: bool
    reason: str | None = None
    request_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _record(operation: str, outcome: str, started: float) -> None:
    PROVIDER_CALLS.labels(PROVIDER, operation, outcome).inc()
    PROVIDER_LATENCY.labels(PROVIDER, operation).observe(time.perf_counter() - started)


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (429, 503):
        return "unavailable"
    if status >= 500:
        return "error"
    return "rejected"


def segment(value: str) -> str:
    """A path segment, percent-encoded (ids are letters and digits; this is belt and braces)."""
    return quote(value, safe="")


class WechatPayClient:
    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session,
        timeouts: Timeouts,
        retry: RetryPolicy,
        mchid: str,
        serial_no: str,
        private_key: rsa.RSAPrivateKey,
        keys: KeyRing,
        clock: Clock,
        tolerance: timedelta,
        sleep: Callable[[float], None] = time.sleep,
        nonce: Callable[[], str] = signing.nonce,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeouts = timeouts
        self.retry = retry
        self.mchid = mchid
        self.serial_no = serial_no
        self.private_key = private_key
        self.keys = keys
        self.clock = clock
        self.tolerance = tolerance
        self.sleep = sleep
        self.nonce = nonce

    # --- operations ----------------------------------------------------------------------------

    def create_transfer(self, body: dict[str, Any], *, platform_serial: str | None) -> Answer:
        extra = {"Wechatpay-Serial": platform_serial} if platform_serial else None
        return self._call(
            "transfer", "POST", "/v3/fund-app/mch-transfer/transfer-bills", body=body, extra=extra
        )

    def transfer(self, out_bill_no: str) -> Answer:
        return self._call(
            "transfer_status",
            "GET",
            f"/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{segment(out_bill_no)}",
        )

    def create_refund(self, body: dict[str, Any]) -> Answer:
        return self._call("refund", "POST", "/v3/refund/domestic/refunds", body=body)

    def refund(self, out_refund_no: str) -> Answer:
        return self._call(
            "refund_status", "GET", f"/v3/refund/domestic/refunds/{segment(out_refund_no)}"
        )

    def payment(self, *, transaction_id: str | None, out_trade_no: str | None) -> Answer:
        path = (
            f"/v3/pay/transactions/id/{segment(transaction_id)}"
            if transaction_id
            else f"/v3/pay/transactions/out-trade-no/{segment(out_trade_no or '')}"
        )
        return self._call("payment", "GET", path, query={"mchid": self.mchid})

    # --- plumbing ------------------------------------------------------------------------------

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
    ) -> Answer:
        target = path + (f"?{urlencode(query)}" if query else "")
        url = self.base_url + target
        # What the signature covers: the path (with any base path prefix) and query as sent.
        split = urlsplit(url)
        signed_url = split.path + (f"?{split.query}" if split.query else "")
        data = (
            json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            if body is not None
            else b""
        )
        started = time.perf_counter()

        def attempt() -> requests.Response:
            headers = {
                "Accept": "application/json",
                **outgoing_headers(),
                "Authorization": signing.authorization(
                    mchid=self.mchid,
                    serial_no=self.serial_no,
                    key=self.private_key,
                    method=method,
                    url=signed_url,
                    body=data,
                    timestamp=int(self.clock.now().timestamp()),
                    nonce_str=self.nonce(),
                ),
                **(extra or {}),
            }
            if body is not None:
                headers["Content-Type"] = "application/json"
            return self.session.request(
                method,
                url,
                headers=headers,
                data=data if body is not None else None,
                timeout=self.timeouts.as_requests(),
                allow_redirects=False,
            )

        try:
            response = send_with_retries(
                self.retry,
                attempt,
                replay_safe=True,
                sleep=self.sleep,
                on_retry=log_retries(log, PROVIDER, operation),
            )
        except requests.RequestException as exc:
            raise self._transport_error(operation, method, exc, started) from exc
        return self._answer(operation, response, started)

    def _transport_error(
        self, operation: str, method: str, exc: requests.RequestException, started: float
    ) -> ProviderError:
        duration = round((time.perf_counter() - started) * 1000)
        if nothing_sent(exc) or method == "GET":
            _record(operation, "unavailable", started)
            log.warning(
                "provider_call", provider=PROVIDER, operation=operation, outcome="unavailable",
                error=type(exc).__name__, duration_ms=duration,
            )  # fmt: skip
            return ProviderUnavailable("WeChat Pay could not be reached")
        outcome = "timeout" if isinstance(exc, requests.Timeout) else "error"
        _record(operation, outcome, started)
        log.warning(
            "provider_call", provider=PROVIDER, operation=operation, outcome=outcome,
            error=type(exc).__name__, duration_ms=duration,
        )  # fmt: skip
        if isinstance(exc, requests.Timeout):
            return ProviderTimeout("WeChat Pay did not answer in time")
        return ProviderOutcomeUnknown("The connection to WeChat Pay was lost")

    def _answer(self, operation: str, response: requests.Response, started: float) -> Answer:
        raw = response.content
        headers = dict(response.headers.items())
        verified, reason = True, None
        signed = any(name.lower() == "wechatpay-signature" for name in headers)
        if 200 <= response.status_code < 300 or signed:
            try:
                signing.verify(
                    headers, raw, self.keys, now=self.clock.now(), tolerance=self.tolerance
                )
            except signing.SignatureError as exc:
                verified, reason = False, exc.reason
        else:
            verified, reason = False, "unsigned"
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        request_id = response.headers.get("Request-ID")
        outcome = _outcome(response.status_code)
        _record(operation, outcome if verified or not response.ok else "bad_signature", started)
        log.info(
            "provider_call",
            provider=PROVIDER,
            operation=operation,
            status=response.status_code,
            outcome=outcome,
            verification=reason or "verified",
            provider_request_id=request_id,
            duration_ms=round((time.perf_counter() - started) * 1000),
        )
        answer = Answer(
            response.status_code,
            payload if isinstance(payload, dict) else None,
            verified,
            reason,
            request_id,
            headers,
        )
        if answer.ok and not verified:
            log.error(
                "provider_answer_not_verified", provider=PROVIDER, operation=operation,
                reason=reason,
            )  # fmt: skip
            raise ProviderOutcomeUnknown(
                "WeChat Pay's answer could not be verified", code="provider_bad_signature"
            )
        return answer
