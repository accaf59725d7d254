"""SMS through an HTTP gateway (the bank's own SMS hub or a provider such as an SMPP bridge).

Request: `POST <url>` JSON `{"to", "text", "reference", "sender"}` with bearer or basic auth
and `Idempotency-Key: <reference>`, so a retried request cannot text the customer twice where
the hub honours the key. Only connection failures (nothing was sent) are retried.

Basic auth takes the token as `user:password`; a token that cannot be split that way is refused
when the notifier is built, since sending without credentials would only fail message by message.
"""

from __future__ import annotations

from typing import Any

import requests
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from adapters.base import NotifierError
from gateway.observability.context import outgoing_headers
from gateway.observability.logging import get_logger, mask
from gateway.settings import SettingsError

log = get_logger("adapters.notifiers.sms_http")


class HttpSmsNotifier:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        auth: str = "bearer",
        sender: str | None = None,
        timeout_seconds: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        if auth not in ("bearer", "basic"):
            raise SettingsError("GATEWAY_SMS_GATEWAY_AUTH: expected 'bearer' or 'basic'")
        self.basic: tuple[str, str] | None = None
        if auth == "basic":
            user, colon, password = (token or "").partition(":")
            if not colon:
                # Never echo the token: it is a credential.
                raise SettingsError(
                    "GATEWAY_SMS_GATEWAY_TOKEN: GATEWAY_SMS_GATEWAY_AUTH=basic needs the token "
                    "as user:password"
                )
            self.basic = (user, password)
        self.url = url
        self.token = token
        self.auth = auth
        self.sender = sender
        self.timeout = (min(3.0, timeout_seconds), timeout_seconds)
        self.session = session or requests.Session()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **outgoing_headers()}
        if self.token and self.auth == "bearer":
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    @retry(
        retry=retry_if_exception_type(requests.ConnectionError),
        stop=stop_after_attempt(3),
        wait=wait_random_exponential(multiplier=0.2, max=2),
        reraise=True,
    )
    def _post(self, payload: dict[str, Any], reference: str) -> requests.Response:
        return self.session.post(
            self.url,
            json=payload,
            headers={**self._headers(), "Idempotency-Key": reference},
            auth=self.basic,
            timeout=self.timeout,
            allow_redirects=False,
        )

    def send_sms(self, *, to: str, text: str, reference: str) -> str:
        payload = {"to": to, "text": text, "reference": reference}
        if self.sender:
            payload["sender"] = self.sender
        try:
            response = self._post(payload, reference)
        except requests.RequestException as exc:
            log.warning(
                "sms_failed", sent_to=mask(to), reference=reference, error=type(exc).__name__
            )
            raise NotifierError("The SMS gateway could not be reached", retryable=True) from exc
        if not 200 <= response.status_code < 300:
            log.warning(
                "sms_rejected", sent_to=mask(to), reference=reference, status=response.status_code
            )
            raise NotifierError(
                f"The SMS gateway refused the message (HTTP {response.status_code})",
                retryable=response.status_code >= 500,
            )
        try:
            message_id = str(
                response.json().get("id") or response.json().get("message_id") or reference
            )
        except ValueError:
            message_id = reference
        log.info("sms_sent", sent_to=mask(to), reference=reference, message_id=message_id)
        return message_id
