"""WeChat Pay API v3 notifications: verify, decrypt, then parse.

WeChat Pay POSTs a JSON envelope (`id`, `event_type`, `resource_type: encrypt-resource`,
`resource` {algorithm, ciphertext, nonce, associated_data}) signed like its answers
(`Wechatpay-Timestamp/Nonce/Signature/Serial` over ``timestamp\\nnonce\\nbody\\n``). The
resource is sealed with the merchant's APIv3 key (AES-GCM), so a notification that verifies
and decrypts is authoritative: it is applied without asking WeChat Pay again.

`verify` is a pure function raising `WebhookVerificationError(reason)`, one reason per check
(the signature's reasons are those of `signing.verify`, then `method_not_allowed`,
`body_too_large`, `malformed_body`, `unsupported_algorithm`, `malformed_resource`,
`decryption_failed`, `merchant_mismatch`). `notification` builds a valid one for tests.

The answer WeChat Pay expects: 200/204 without a body when taken; 4xx/5xx with
`{"code": "FAIL", "message": "…"}` otherwise (it then retries, for up to 24 hours).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.base import (
    PayoutResult,
    ProviderError,
    ProviderNotification,
    WebhookVerificationError,
)
from adapters.providers.rsa_keys import KeyRing
from adapters.providers.wechatpay import mapping, signing

MAX_BODY_BYTES = 65_536


@dataclass(frozen=True)
class Notification:
    """A verified notification: its envelope and the decrypted resource."""

    envelope: dict[str, Any]
    resource: dict[str, Any]
    serial: str


def verify(
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    keys: KeyRing,
    apiv3_key: bytes,
    now: datetime,
    tolerance: timedelta = signing.TOLERANCE,
    mchid: str | None = None,
) -> Notification:
    """Check a notification and open its resource; raises `WebhookVerificationError`."""
    if method.upper() != "POST":
        raise WebhookVerificationError("method_not_allowed", "WeChat Pay notifications are POSTs")
    if len(body) > MAX_BODY_BYTES:
        raise WebhookVerificationError("body_too_large")
    try:
        verified = signing.verify(headers, body, keys, now=now, tolerance=tolerance)
    except signing.SignatureError as exc:
        raise WebhookVerificationError(exc.reason) from None
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookVerificationError("malformed_body") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("id"), str):
        raise WebhookVerificationError("malformed_body")
    sealed = envelope.get("resource")
    if not isinstance(sealed, dict):
        raise WebhookVerificationError("malformed_body")
    if sealed.get("algorithm") != signing.AEAD_ALGORITHM:
        raise WebhookVerificationError("unsupported_algorithm")
    parts = (sealed.get("ciphertext"), sealed.get("nonce"), sealed.get("associated_data", ""))
    if not all(isinstance(part, str) for part in parts):
        raise WebhookVerificationError("malformed_resource")
    ciphertext, nonce_str, associated = (str(part) for part in parts)
    try:
        plaintext = signing.decrypt_resource(
            apiv3_key, nonce_str=nonce_str, associated_data=associated, ciphertext=ciphertext
        )
    except signing.SignatureError as exc:
        raise WebhookVerificationError(exc.reason) from None
    try:
        resource = json.loads(plaintext)
    except (ValueError, UnicodeDecodeError):
        raise WebhookVerificationError("malformed_resource") from None
    if not isinstance(resource, dict):
        raise WebhookVerificationError("malformed_resource")
    if mchid is not None:
        merchant = resource.get("mchid", resource.get("mch_id"))
        if merchant is not None and str(merchant) != mchid:
            raise WebhookVerificationError("merchant_mismatch")
    return Notification(envelope, resource, verified.serial)


def parse(notification: Notification) -> ProviderNotification:
    """A verified notification as our notification: transfers are applied, refunds and
    everything else (payments, PayScore, ...) are recorded only."""
    envelope, resource = notification.envelope, notification.resource
    event_type = str(envelope.get("event_type", ""))
    event_id = str(envelope["id"])[:100]
    if event_type == mapping.EVENT_TRANSFER:
        result = _result(mapping.transfer_result, resource)
        bill = resource.get("out_bill_no")
        reference = resource.get("transfer_bill_no")
        return ProviderNotification(
            event_id=event_id,
            kind="payout",
            idempotency_key=str(bill)[:64] if bill else None,
            transaction_reference=str(reference)[:100] if reference else None,
            result=result,
            authoritative=result is not None,
        )
    if event_type in mapping.REFUND_EVENTS:
        result = _result(mapping.refund_result, resource)
        refund_no = resource.get("out_refund_no")
        return ProviderNotification(
            event_id=event_id,
            kind="refund",
            idempotency_key=str(refund_no)[:64] if refund_no else None,
            transaction_reference=str(resource.get("refund_id") or "")[:100] or None,
            result=result,
            authoritative=result is not None,
        )
    return ProviderNotification(event_id=event_id, kind="other")


def _result(reader: Any, resource: dict[str, Any]) -> PayoutResult | None:
    try:
        result: PayoutResult = reader(resource)
    except ProviderError:
        return None  # an unknown word: not applied; the status query decides
    return result


def notification(
    resource: dict[str, Any],
    *,
    event_type: str,
    apiv3_key: bytes,
    key: rsa.RSAPrivateKey,
    serial: str,
    timestamp: int,
    event_id: str | None = None,
    original_type: str = "mch_payment",
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a valid notification (tests)."""
    sealed = signing.encrypt_resource(
        apiv3_key,
        json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode(),
        associated_data=original_type,
    )
    envelope = {
        "id": event_id or str(uuid.uuid4()),
        "create_time": datetime.fromtimestamp(timestamp, UTC).isoformat(),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "notification",
        "resource": {"original_type": original_type, **sealed},
    }
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        **signing.signed_headers(body, key=key, serial=serial, timestamp=timestamp),
    }
    return headers, body


def failure_body(message: str) -> bytes:
    """The body WeChat Pay expects with a 4xx/5xx answer to a notification."""
    return json.dumps({"code": "FAIL", "message": message[:200]}, ensure_ascii=False).encode()
