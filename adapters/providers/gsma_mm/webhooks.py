"""GSMA Mobile Money API callbacks: verify, then parse.

A provider answers an asynchronous request by `PUT`ting the final transaction (success) or an
error object (failure) to the `X-Callback-URL` we sent, with our `X-CorrelationID`. The API has
no signature scheme: what can be checked is a shared key (`X-API-Key`, when configured), the
correlation id, the freshness of `X-Date` and, when sent, `X-Content-Hash` (SHA-256 of the
body). Even a verified callback is therefore only a *hint*: the gateway fetches the status from
the provider before it applies anything (`ProviderNotification.authoritative` is False).

`verify` is a pure function: one exception type (`WebhookVerificationError`) with a distinct
`reason` per failed check, constant-time comparison of the key. `callback_headers` builds
valid headers for tests and the sandbox.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from adapters.base import ProviderError, ProviderNotification, WebhookVerificationError
from adapters.providers.gsma_mm import mapping
from gateway.domain.clock import rfc3339

MAX_BODY_BYTES = 65_536


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _moment(value: str) -> datetime | None:
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)  # RFC 7231 form, as some providers send
        except (TypeError, ValueError):
            return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def verify(
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    api_key: str | None,
    now: datetime,
    tolerance: timedelta,
) -> dict[str, Any]:
    """Check a callback; returns its JSON object. Raises `WebhookVerificationError(reason)`."""
    if method.upper() != "PUT":
        raise WebhookVerificationError("method_not_allowed", "GSMA callbacks are PUT requests")
    if api_key is not None:
        presented = _header(headers, "X-API-Key")
        if not presented:
            raise WebhookVerificationError("missing_api_key")
        if not hmac.compare_digest(presented.encode(), api_key.encode()):
            raise WebhookVerificationError("api_key_mismatch")
    correlation = _header(headers, "X-CorrelationID")
    if not correlation:
        raise WebhookVerificationError("missing_correlation_id")
    if not mapping.is_uuid(correlation.strip()):
        raise WebhookVerificationError("malformed_correlation_id")
    stamp = _header(headers, "X-Date")
    if stamp is not None:
        moment = _moment(stamp)
        if moment is None:
            raise WebhookVerificationError("malformed_date")
        if abs(now - moment) > tolerance:
            raise WebhookVerificationError("stale_date")
    content_hash = _header(headers, "X-Content-Hash")
    if content_hash is not None and not hmac.compare_digest(
        content_hash.strip().lower().encode(), hashlib.sha256(body).hexdigest().encode()
    ):
        raise WebhookVerificationError("content_hash_mismatch")
    if len(body) > MAX_BODY_BYTES:
        raise WebhookVerificationError("body_too_large")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookVerificationError("malformed_body") from None
    if not isinstance(document, dict) or not (
        "transactionStatus" in document or "errorCategory" in document
    ):
        raise WebhookVerificationError("malformed_body")
    return document


def parse(
    headers: Mapping[str, str], body: bytes, document: dict[str, Any]
) -> ProviderNotification:
    """A verified callback as a notification (a hint: `authoritative` is False)."""
    correlation = (_header(headers, "X-CorrelationID") or "").strip().lower()
    digest = hashlib.sha256(correlation.encode() + b"\n" + body).hexdigest()
    result = None
    try:
        if "errorCategory" in document:
            result = mapping.failed_result(document)
        else:
            result = mapping.transaction_result(document)
    except ProviderError:
        result = None  # an unknown word in a hint changes nothing: the status query decides
    reference = document.get("requestingOrganisationTransactionReference")
    transaction_reference = document.get("transactionReference")
    return ProviderNotification(
        event_id=f"{correlation}:{digest[:32]}",
        kind="payout",
        reference=str(reference)[:100] if reference else None,
        idempotency_key=correlation,
        transaction_reference=str(transaction_reference)[:100] if transaction_reference else None,
        result=result,
        authoritative=False,
    )


def callback_headers(
    body: bytes,
    *,
    correlation_id: str,
    at: datetime,
    api_key: str | None = None,
    content_hash: bool = True,
) -> dict[str, str]:
    """Headers of a valid callback (tests, and the sandbox simulator's own copy of the rules)."""
    headers = {
        "Content-Type": "application/json",
        "X-CorrelationID": correlation_id,
        "X-Date": rfc3339(at.replace(microsecond=0)),
    }
    if content_hash:
        headers["X-Content-Hash"] = hashlib.sha256(body).hexdigest()
    if api_key is not None:
        headers["X-API-Key"] = api_key
    return headers
