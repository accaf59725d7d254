"""Alipay asynchronous notifications: verify, then parse.

Alipay POSTs `application/x-www-form-urlencoded` parameters signed with RSA2: a transfer's
status change comes as the message-service notification `alipay.fund.trans.order.changed`
(`msg_method`, `biz_content` JSON, `notify_id`, `utc_timestamp`, `app_id`, `sign`), a
refund as a `trade_status_sync` notification carrying `out_biz_no` (the refund's
`out_request_no`) and `refund_fee`. A verified notification is authoritative; it is
deduplicated by `notify_id` (Alipay sends the same notification again until it gets `success`).

`verify` is pure and raises `WebhookVerificationError(reason)`: `method_not_allowed`,
`body_too_large`, `malformed_body`, the signature's reasons (`missing_signature`,
`unsupported_sign_type`, `malformed_signature`, `content_mismatch`, `wrong_key`), then
`app_id_mismatch`. Alipay notifications carry no freshness guarantee we can check (they are
re-sent for about a day with their original content), so replays are handled by
deduplication and by the payout's one-way decision, not by a time window.

The answer Alipay expects is the plain text `success`; anything else means "send again".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.base import (
    PayoutResult,
    ProviderError,
    ProviderNotification,
    WebhookVerificationError,
)
from adapters.providers.alipay import mapping, signing
from adapters.providers.rsa_keys import KeyRing

MAX_BODY_BYTES = 65_536
SUCCESS = b"success"


def parse_form(body: bytes) -> dict[str, str]:
    """The notification's parameters, decoded in the charset it declares."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise WebhookVerificationError("malformed_body") from None
    try:
        # First only to learn the declared charset (values may not be UTF-8).
        first = parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="replace")
        charset = dict(first).get("charset", "utf-8") or "utf-8"
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, encoding=charset, errors="strict"
        )
    except (ValueError, LookupError, UnicodeDecodeError):
        raise WebhookVerificationError("malformed_body") from None
    params = dict(pairs)
    if len(params) != len(pairs) or not params:
        raise WebhookVerificationError("malformed_body")  # repeated parameters: ambiguous
    return params


def verify(
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    keys: KeyRing,
    app_id: str | None,
) -> dict[str, str]:
    """Check a notification; returns its parameters."""
    if method.upper() != "POST":
        raise WebhookVerificationError("method_not_allowed", "Alipay notifications are POSTs")
    if len(body) > MAX_BODY_BYTES:
        raise WebhookVerificationError("body_too_large")
    params = parse_form(body)
    try:
        signing.verify_notification(params, keys.all())
    except signing.SignatureError as first:
        if first.reason not in ("content_mismatch", "wrong_key", "no_keys_configured"):
            raise WebhookVerificationError(first.reason) from None
        try:  # a rotated key may just have been added to the directory
            signing.verify_notification(params, keys.all(refresh=True))
        except signing.SignatureError as exc:
            raise WebhookVerificationError(exc.reason) from None
    if app_id is not None and params.get("app_id") != app_id:
        raise WebhookVerificationError("app_id_mismatch")
    return params


def _event_id(params: Mapping[str, str], body: bytes) -> str:
    notify_id = params.get("notify_id")
    return notify_id[:100] if notify_id else "sha256:" + hashlib.sha256(body).hexdigest()[:32]


def parse(params: dict[str, str], body: bytes) -> ProviderNotification:
    """A verified notification as ours: transfers are applied, refunds and payments recorded."""
    event_id = _event_id(params, body)
    if params.get("msg_method") == mapping.MSG_TRANSFER_CHANGED:
        try:
            biz = json.loads(params.get("biz_content", ""))
        except ValueError:
            biz = None
        if not isinstance(biz, dict):
            raise WebhookVerificationError("malformed_body")
        result = _result(biz)
        bill = biz.get("out_biz_no")
        order = biz.get("order_id")
        return ProviderNotification(
            event_id=event_id,
            kind="payout",
            idempotency_key=str(bill)[:64] if bill else None,
            transaction_reference=str(order)[:100] if order else None,
            result=result,
            authoritative=result is not None,
        )
    if params.get("notify_type") == "trade_status_sync":
        if params.get("out_biz_no") and params.get("refund_fee"):
            return ProviderNotification(
                event_id=event_id,
                kind="refund",
                idempotency_key=params["out_biz_no"][:64],
                transaction_reference=(params.get("trade_no") or "")[:100] or None,
                result=PayoutResult(
                    state="succeeded",
                    provider_status=(params.get("trade_status") or "REFUND")[:60],
                    request_id=params["out_biz_no"][:64],
                    transaction_reference=(params.get("trade_no") or "")[:100] or None,
                ),
                authoritative=True,
            )
        return ProviderNotification(event_id=event_id, kind="payment")
    return ProviderNotification(event_id=event_id, kind="other")


def _result(biz: dict[str, Any]) -> PayoutResult | None:
    try:
        return mapping.transfer_result(biz)
    except ProviderError:
        return None  # an unknown word: not applied; the status query decides


def notification(
    params: dict[str, str], key: rsa.RSAPrivateKey, *, sign_type_signed: bool = False
) -> bytes:
    """The form body of a valid notification (tests). Alipay signs some notifications with
    `sign_type` in the content and some without; both verify."""
    values = {**params, "sign_type": signing.SIGN_TYPE}
    excluded = ("sign",) if sign_type_signed else ("sign", "sign_type")
    values["sign"] = signing.sign(key, signing.content(values, exclude=excluded))
    return urlencode(values).encode()
