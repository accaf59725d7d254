"""Alipay asynchronous notifications: verify, then parse.

Alipay POSTs `application/x-www-form-urlencoded` parameters signed with RSA2: a transfer's
status change comes as the message-service notification `alipay.fund.trans.order.changed`
(`msg_method`, `biz_content` JSON, `notify_id`, `utc_timestamp`, `app_id`, `sign`), a
refund as a `trade_status_sync` notification carrying `out_biz_no` (the refund's
`out_request_no`) and `refund_fee`. A verified notification is authoritative; it is
deduplicated by `notify_id` (Alipay sends the same notification again until it gets `success`).

`verify` is pure (the time is passed in) and raises `WebhookVerificationError(reason)`:
`method_not_allowed`, `body_too_large`, `malformed_body`, the signature's reasons
(`missing_signature`, `unsupported_sign_type`, `malformed_signature`, `content_mismatch`,
`wrong_key`), then the freshness of the signed send time (`missing_timestamp`,
`malformed_timestamp`, `stale_timestamp`), then `app_id_mismatch`.

Certificate mode (`by_cert_sn`): the keys are Alipay's certificates known by their SN; a
notification naming one in `alipay_cert_sn` is checked with that one only (an SN not loaded
makes the directory be read again once, then is `unknown_cert_sn`), one without is checked with
every loaded certificate. The rest (with and without `sign_type`, the send time) is the same.

Freshness: every asynchronous notification carries when Alipay sent it, inside the signed
content — `notify_time` (`YYYY-MM-DD HH:MM:SS`, Beijing time, UTC+8) on trade notifications
(`trade_status_sync`), `utc_timestamp` (milliseconds since the epoch) on message-service
notifications (`alipay.fund.trans.order.changed`, which have no `notify_time`). It must be no
older than `max_age` and no more than `MAX_SKEW` ahead of our clock. Alipay re-sends an
unanswered notification for about 25 hours (4m, 10m, 10m, 1h, 2h, 6h, 15h), so the default
`MAX_AGE` of 48 hours takes every genuine retry, and the window only bounds how long a
captured notification can be replayed; replays inside it are still handled by deduplication
on `notify_id` and by the payout's one-way decision. A notification without either field is
refused (`missing_timestamp`): Alipay always sends one.

Alipay's synchronous answers carry no signed timestamp, so they have no window (see
`signing.verify_response`).

The answer Alipay expects is the plain text `success`; anything else means "send again".
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
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
MAX_AGE = timedelta(hours=48)  # Alipay retries for ~25 h: every genuine retry is taken
MAX_SKEW = timedelta(minutes=5)  # how far ahead of our clock Alipay's may be
_NOTIFY_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$")
_UTC_TIMESTAMP = re.compile(r"^[0-9]{1,15}$")


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
    now: datetime,
    max_age: timedelta = MAX_AGE,
    max_skew: timedelta = MAX_SKEW,
    by_cert_sn: bool = False,
) -> dict[str, str]:
    """Check a notification at `now` (our clock); returns its parameters.

    The send time is checked only once the signature holds (before, it is just a claim), so
    a changed byte or another key keeps its own reason whatever the time."""
    if method.upper() != "POST":
        raise WebhookVerificationError("method_not_allowed", "Alipay notifications are POSTs")
    if len(body) > MAX_BODY_BYTES:
        raise WebhookVerificationError("body_too_large")
    params = parse_form(body)
    if by_cert_sn and params.get("alipay_cert_sn"):
        _verify_by_cert_sn(params, keys)
    else:
        _verify_with_any(params, keys)
    sent = sent_at(params)
    if sent < now - max_age:
        raise WebhookVerificationError(
            "stale_timestamp", f"Notification rejected: sent at {sent.isoformat()}, too old"
        )
    if sent > now + max_skew:
        raise WebhookVerificationError(
            "stale_timestamp", f"Notification rejected: sent at {sent.isoformat()}, in the future"
        )
    if app_id is not None and params.get("app_id") != app_id:
        raise WebhookVerificationError("app_id_mismatch")
    return params


def _verify_by_cert_sn(params: Mapping[str, str], keys: KeyRing) -> None:
    if not params.get("sign"):
        raise WebhookVerificationError("missing_signature")
    try:
        key = signing.key_by_cert_sn(keys, params["alipay_cert_sn"])
        signing.verify_notification(params, (key,))
    except signing.SignatureError as exc:
        raise WebhookVerificationError(exc.reason) from None


def _verify_with_any(params: Mapping[str, str], keys: KeyRing) -> None:
    try:
        signing.verify_notification(params, keys.all())
    except signing.SignatureError as first:
        if first.reason not in ("content_mismatch", "wrong_key", "no_keys_configured"):
            raise WebhookVerificationError(first.reason) from None
        try:  # a rotated key may just have been added to the directory
            signing.verify_notification(params, keys.all(refresh=True))
        except signing.SignatureError as exc:
            raise WebhookVerificationError(exc.reason) from None


def sent_at(params: Mapping[str, str]) -> datetime:
    """When Alipay sent a notification (UTC): its `notify_time` (Beijing time) or, for a
    message-service notification, its `utc_timestamp` (milliseconds since the epoch).

    Raises `WebhookVerificationError`: `missing_timestamp` (neither, or empty),
    `malformed_timestamp` (not in its documented form, or not a real date)."""
    notify_time = params.get("notify_time")
    if notify_time:
        if not _NOTIFY_TIME.match(notify_time):
            raise WebhookVerificationError("malformed_timestamp")
        try:
            local = datetime.strptime(notify_time, signing.TIME_FORMAT)
        except ValueError:
            raise WebhookVerificationError("malformed_timestamp") from None
        return local.replace(tzinfo=signing.BEIJING).astimezone(UTC)
    stamp = params.get("utc_timestamp")
    if stamp:
        if not _UTC_TIMESTAMP.match(stamp):
            raise WebhookVerificationError("malformed_timestamp")
        try:
            return datetime.fromtimestamp(int(stamp) / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            raise WebhookVerificationError("malformed_timestamp") from None
    raise WebhookVerificationError("missing_timestamp")


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
    params: dict[str, str],
    key: rsa.RSAPrivateKey,
    *,
    sign_type_signed: bool = False,
    now: datetime | None = None,
    cert_sn: str | None = None,
) -> bytes:
    """The form body of a valid notification (tests). Alipay signs some notifications with
    `sign_type` in the content and some without; both verify. Without a `notify_time` or
    `utc_timestamp` in `params`, it is stamped as sent at `now` (default: the real clock):
    `utc_timestamp` on a message-service notification (`msg_method`), else `notify_time`.
    `cert_sn`: the `alipay_cert_sn` of certificate mode (signed like every parameter)."""
    values = {**params, "sign_type": signing.SIGN_TYPE}
    if cert_sn:
        values["alipay_cert_sn"] = cert_sn
    if not values.get("notify_time") and not values.get("utc_timestamp"):
        sent = now or datetime.now(UTC)
        if "msg_method" in values:
            values["utc_timestamp"] = str(int(sent.timestamp() * 1000))
        else:
            values["notify_time"] = signing.beijing_time(sent)
    excluded = ("sign",) if sign_type_signed else ("sign", "sign_type")
    values["sign"] = signing.sign(key, signing.content(values, exclude=excluded))
    return urlencode(values).encode()
