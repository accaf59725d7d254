"""HTTP to the Alipay OpenAPI gateway, and nothing else.

Every call is one form POST to the gateway endpoint with the public parameters (app_id,
method, format, charset, sign_type RSA2, timestamp in Beijing time, version, notify_url) and
the JSON `biz_content`, signed over the sorted parameters; it is sent under the shared retry
policy with explicit timeouts. The answer's `sign` is checked over the exact bytes of its
`<method>_response` value before anything in it is believed. What answers mean is
`mapping.py`'s business.

* Every method used is replay-safe: queries are reads, and the transfer and refund carry the
  `out_biz_no` / `out_request_no` Alipay deduplicates on.
* Not reached -> `ProviderUnavailable`; a read timeout on a money-moving call ->
  `ProviderTimeout`; a connection lost after sending it -> `ProviderOutcomeUnknown`; a query
  that fails in transit is simply unavailable.
* A success (`code` 10000) without a valid signature is not believed
  (`ProviderOutcomeUnknown`, `provider_bad_signature`); an error answer carries `verified`.
* Logs name the method, the answer's code/sub_code and the duration; never a body.
* Certificate mode (`certificates` given): every request also carries the signed public
  parameters `app_cert_sn` and `alipay_root_cert_sn`; an answer's signature is checked with the
  Alipay certificate its `alipay_cert_sn` names (an SN not loaded makes the certificates
  directory be read again once, then is `unknown_cert_sn`); an answer without
  `alipay_cert_sn` is checked with every loaded certificate, as the SDK keeps its current one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.base import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderTimeout,
    ProviderUnavailable,
)
from adapters.http import RetryPolicy, Timeouts, log_retries, nothing_sent, send_with_retries
from adapters.providers.alipay import signing
from adapters.providers.rsa_keys import KeyRing
from gateway.domain.clock import Clock
from gateway.observability.context import outgoing_headers
from gateway.observability.logging import get_logger
from gateway.observability.metrics import PROVIDER_CALLS, PROVIDER_LATENCY

log = get_logger("adapters.providers.alipay")
PROVIDER = "alipay"


@dataclass(frozen=True)
class CertificateSerials:
    """The public parameters of certificate mode (see `certificates.py`)."""

    app_cert_sn: str
    alipay_root_cert_sn: str


@dataclass(frozen=True)
class Answer:
    """The `<method>_response` object of an answer and whether Alipay's signature held."""

    value: dict[str, Any]
    verified: bool
    reason: str | None = None

    @property
    def code(self) -> str:
        return str(self.value.get("code", ""))

    @property
    def ok(self) -> bool:
        return self.code == "10000"


def _record(operation: str, outcome: str, started: float) -> None:
    PROVIDER_CALLS.labels(PROVIDER, operation, outcome).inc()
    PROVIDER_LATENCY.labels(PROVIDER, operation).observe(time.perf_counter() - started)


class AlipayClient:
    def __init__(
        self,
        gateway_url: str,
        *,
        session: requests.Session,
        timeouts: Timeouts,
        retry: RetryPolicy,
        app_id: str,
        private_key: rsa.RSAPrivateKey,
        keys: KeyRing,
        clock: Clock,
        sleep: Callable[[float], None] = time.sleep,
        certificates: CertificateSerials | None = None,
    ) -> None:
        """`keys`: Alipay's public keys, or in certificate mode (`certificates` given) its
        certificates' keys known by their SN."""
        self.gateway_url = gateway_url
        self.session = session
        self.timeouts = timeouts
        self.retry = retry
        self.app_id = app_id
        self.private_key = private_key
        self.keys = keys
        self.clock = clock
        self.sleep = sleep
        self.certificates = certificates

    def params(self, method: str, biz: dict[str, Any], *, notify_url: str | None) -> dict[str, str]:
        """The signed form of one call (a fresh timestamp per attempt)."""
        params = {
            "app_id": self.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": signing.SIGN_TYPE,
            "timestamp": signing.beijing_time(self.clock.now()),
            "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        if notify_url:
            params["notify_url"] = notify_url
        if self.certificates is not None:
            params["app_cert_sn"] = self.certificates.app_cert_sn
            params["alipay_root_cert_sn"] = self.certificates.alipay_root_cert_sn
        params["sign"] = signing.sign_params(self.private_key, params)
        return params

    def call(
        self,
        method: str,
        biz: dict[str, Any],
        *,
        read: bool,
        notify_url: str | None = None,
    ) -> Answer:
        operation = method.removeprefix("alipay.")
        started = time.perf_counter()

        def attempt() -> requests.Response:
            form = urlencode(self.params(method, biz, notify_url=notify_url)).encode()
            return self.session.post(
                self.gateway_url,
                data=form,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded;charset=utf-8",
                    "Accept": "application/json",
                    **outgoing_headers(),
                },
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
            raise self._transport_error(operation, read, exc, started) from exc
        if response.status_code != 200:
            _record(operation, "error", started)
            log.warning(
                "provider_call", provider=PROVIDER, operation=operation,
                status=response.status_code, outcome="error",
            )  # fmt: skip
            if response.status_code == 429 or read:
                raise ProviderUnavailable(f"Alipay answered HTTP {response.status_code}")
            raise ProviderOutcomeUnknown(
                f"Alipay answered HTTP {response.status_code}", code="provider_bad_response"
            )
        return self._answer(operation, method, response.content, started)

    def _transport_error(
        self, operation: str, read: bool, exc: requests.RequestException, started: float
    ) -> ProviderError:
        duration = round((time.perf_counter() - started) * 1000)
        if nothing_sent(exc) or read:
            _record(operation, "unavailable", started)
            log.warning(
                "provider_call", provider=PROVIDER, operation=operation, outcome="unavailable",
                error=type(exc).__name__, duration_ms=duration,
            )  # fmt: skip
            return ProviderUnavailable("Alipay could not be reached")
        outcome = "timeout" if isinstance(exc, requests.Timeout) else "error"
        _record(operation, outcome, started)
        log.warning(
            "provider_call", provider=PROVIDER, operation=operation, outcome=outcome,
            error=type(exc).__name__, duration_ms=duration,
        )  # fmt: skip
        if isinstance(exc, requests.Timeout):
            return ProviderTimeout("Alipay did not answer in time")
        return ProviderOutcomeUnknown("The connection to Alipay was lost")

    def verify(self, value: signing.ResponseValue) -> str | None:
        """None when the answer's signature holds, else why not (keys re-read once)."""
        if self.certificates is not None and value.sign and value.cert_sn:
            try:
                key = signing.key_by_cert_sn(self.keys, value.cert_sn)
                signing.verify_response(value, (key,))
                return None
            except signing.SignatureError as exc:
                return exc.reason
        try:
            signing.verify_response(value, self.keys.all())
            return None
        except signing.SignatureError as exc:
            if exc.reason in ("missing_signature", "malformed_signature"):
                return exc.reason
        try:
            signing.verify_response(value, self.keys.all(refresh=True))
            return None
        except signing.SignatureError as exc:
            return exc.reason

    def _answer(self, operation: str, method: str, raw: bytes, started: float) -> Answer:
        try:
            value = signing.response_value(raw, method)
        except signing.SignatureError:
            _record(operation, "error", started)
            log.error("provider_answer_unreadable", provider=PROVIDER, operation=operation)
            raise ProviderOutcomeUnknown(
                "Alipay's answer could not be read", code="provider_bad_response"
            ) from None
        reason = self.verify(value)
        answer = Answer(value.value, reason is None, reason)
        outcome = "ok" if answer.ok else "rejected"
        _record(operation, outcome if reason is None else "bad_signature", started)
        log.info(
            "provider_call",
            provider=PROVIDER,
            operation=operation,
            code=answer.code,
            sub_code=str(answer.value.get("sub_code", ""))[:60] or None,
            outcome=outcome,
            verification=reason or "verified",
            duration_ms=round((time.perf_counter() - started) * 1000),
        )
        if answer.ok and not answer.verified:
            log.error(
                "provider_answer_not_verified", provider=PROVIDER, operation=operation,
                reason=reason,
            )  # fmt: skip
            raise ProviderOutcomeUnknown(
                "Alipay's answer could not be verified", code="provider_bad_signature"
            )
        return answer
