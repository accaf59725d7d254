"""Alipay OpenAPI RSA2 signatures (SHA256withRSA, PKCS#1 v1.5): requests, answers and
asynchronous notifications. Pure functions over bytes and strings (no HTTP).

Sources: the Alipay open platform documentation ("签名" / "自行实现验签", opendocs.alipay.com)
and what its SDKs do (alipay-sdk-java `AlipaySignature.rsaCheckV1/V2`, alipay-sdk-nodejs-all
`checkNotifySign`, `checkResponseSign`), checked against their published vectors by
`tests/unit/test_alipay_signing.py`.

* Request: every parameter except `sign` (empty values skipped), sorted by name, joined as
  ``k=v`` with ``&``, values raw (not URL-encoded); `biz_content` is the JSON text as sent.
* Answer: ``{"<method>_response": {...}, "sign": "..."}``; the signature covers the *exact
  bytes* of the `<method>_response` value in the text received, never a re-serialization
  (key order, spacing and escapes would change). `response_value` finds those bytes by
  decoding the top-level object token by token.
* Notification: all POST parameters except `sign`; depending on the notification, Alipay
  includes `sign_type` in the signed content or not, so both are tried, as the SDKs do. Its
  signed send time (`notify_time` / `utc_timestamp`) is held to a window by `webhooks.verify`;
  answers have no signed time, so no window.
* Certificate mode changes no signature: the SNs (`certificates.py`) are ordinary signed
  request parameters, and an answer's `alipay_cert_sn` sits next to `sign`, outside the signed
  bytes, only naming the key (`ResponseValue.cert_sn`).
* A failed check says why (`SignatureError.reason`): `content_mismatch` when a configured key
  made the signature over other bytes (a changed byte), `wrong_key` when none of them made it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from adapters.providers.rsa_keys import KeyRing, PublicKey

SIGN_TYPE = "RSA2"
BEIJING = timezone(timedelta(hours=8), "CST")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # request `timestamp` and notification `notify_time`


class SignatureError(ValueError):
    """A signature did not check out; `reason` says which check."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def beijing_time(moment: datetime) -> str:
    """`moment` as Alipay writes times: "yyyy-MM-dd HH:mm:ss" in China Standard Time (UTC+8)."""
    return moment.astimezone(BEIJING).strftime(TIME_FORMAT)


def content(params: Mapping[str, Any], *, exclude: Iterable[str] = ("sign",)) -> str:
    """The signed content: sorted `k=v` pairs joined by `&`, empty values and `exclude`d skipped."""
    skipped = set(exclude)
    return "&".join(
        f"{name}={params[name]}"
        for name in sorted(params)
        if name not in skipped and params[name] is not None and str(params[name]) != ""
    )


def sign(key: rsa.RSAPrivateKey, text: str) -> str:
    return base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def sign_params(key: rsa.RSAPrivateKey, params: Mapping[str, Any]) -> str:
    """The `sign` of a request's parameters."""
    return sign(key, content(params))


def _decode(signature: str) -> bytes:
    try:
        return base64.b64decode("".join(signature.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed_signature") from None


def check(signature: str, texts: Iterable[bytes], keys: Iterable[PublicKey]) -> None:
    """Pass if any key signed any of `texts`; otherwise say whether a key signed something
    else (`content_mismatch`) or no key signed it (`wrong_key`)."""
    raw = _decode(signature)
    candidates = list(texts)
    keyring = list(keys)
    if not keyring:
        raise SignatureError("no_keys_configured")
    for public in keyring:
        for text in candidates:
            try:
                public.key.verify(raw, text, padding.PKCS1v15(), hashes.SHA256())
                return
            except InvalidSignature:
                continue
    for public in keyring:
        try:
            public.key.recover_data_from_signature(raw, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            continue
        raise SignatureError("content_mismatch")
    raise SignatureError("wrong_key")


def key_by_cert_sn(keys: KeyRing, cert_sn: str) -> PublicKey:
    """Certificate mode: the key of the Alipay certificate `cert_sn` names (an SN not loaded
    makes the directory be read again once first); raises `SignatureError("unknown_cert_sn")`."""
    key = keys.get(cert_sn)
    if key is None:
        raise SignatureError("unknown_cert_sn")
    return key


def verify_notification(params: Mapping[str, str], keys: Iterable[PublicKey]) -> None:
    """Check an asynchronous notification's `sign` (RSA2); raises `SignatureError`.

    Reasons: `missing_signature`, `unsupported_sign_type`, `malformed_signature`,
    `content_mismatch`, `wrong_key`, `no_keys_configured`.
    """
    signature = params.get("sign")
    if not signature:
        raise SignatureError("missing_signature")
    sign_type = params.get("sign_type", SIGN_TYPE)
    if sign_type != SIGN_TYPE:
        raise SignatureError("unsupported_sign_type")
    check(
        signature,
        (
            content(params, exclude=("sign", "sign_type")).encode(),  # v1 (trade notifications)
            content(params, exclude=("sign",)).encode(),  # v2 (message-service notifications)
        ),
        keys,
    )


# --- answers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseValue:
    """The `<method>_response` of an answer: its parsed object, its exact bytes, its `sign`,
    and in certificate mode the `alipay_cert_sn` naming the certificate that signed it (next to
    `sign`, outside the signed bytes)."""

    key: str
    value: dict[str, Any]
    raw: bytes
    sign: str | None
    cert_sn: str | None = None


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def top_level_spans(text: str) -> dict[str, tuple[int, int]]:
    """Where each top-level member's value starts and ends in `text` (a JSON object)."""
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int]] = {}
    index = _skip(text, 0)
    if index >= len(text) or text[index] != "{":
        raise SignatureError("malformed_response")
    index = _skip(text, index + 1)
    if index < len(text) and text[index] == "}":
        return spans
    try:
        while True:
            name, index = decoder.raw_decode(text, index)
            index = _skip(text, index)
            if not isinstance(name, str) or text[index] != ":":
                raise SignatureError("malformed_response")
            start = _skip(text, index + 1)
            _value, end = decoder.raw_decode(text, start)
            if name in spans:
                raise SignatureError("malformed_response")  # a duplicate key: ambiguous
            spans[name] = (start, end)
            index = _skip(text, end)
            if text[index] == ",":
                index = _skip(text, index + 1)
                continue
            if text[index] == "}":
                break
            raise SignatureError("malformed_response")
    except (ValueError, IndexError):
        raise SignatureError("malformed_response") from None
    if _skip(text, index + 1) != len(text):
        raise SignatureError("malformed_response")
    return spans


def response_value(body: bytes, method: str) -> ResponseValue:
    """The `<method>_response` (or `error_response`) of an answer, with its exact bytes."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError("malformed_response") from None
    spans = top_level_spans(text)
    wanted = method.replace(".", "_") + "_response"
    key = wanted if wanted in spans else "error_response" if "error_response" in spans else None
    if key is None:
        raise SignatureError("malformed_response")
    start, end = spans[key]
    raw = text[start:end]
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise SignatureError("malformed_response")
    return ResponseValue(
        key,
        value,
        raw.encode("utf-8"),
        _string_member(text, spans, "sign"),
        _string_member(text, spans, "alipay_cert_sn"),
    )


def _string_member(text: str, spans: dict[str, tuple[int, int]], name: str) -> str | None:
    if name not in spans:
        return None
    start, end = spans[name]
    loaded = json.loads(text[start:end])
    return loaded if isinstance(loaded, str) and loaded else None


def verify_response(value: ResponseValue, keys: Iterable[PublicKey]) -> None:
    """Check an answer's `sign` over the exact bytes of its value.

    No time window here, unlike notifications: Alipay's signed answer carries no timestamp
    (the request's `timestamp` is ours and is not echoed), so its freshness cannot be checked.
    An answer is tied to its request by the HTTPS exchange it arrives on and to the transfer
    by its `out_biz_no` (checked by the adapter)."""
    if not value.sign:
        raise SignatureError("missing_signature")
    check(value.sign, (value.raw,), keys)


def response_text(
    method: str, value: dict[str, Any], key: rsa.RSAPrivateKey, *, cert_sn: str | None = None
) -> bytes:
    """A signed answer as Alipay writes it, with `alipay_cert_sn` in certificate mode (tests;
    the sandbox has its own copy)."""
    raw = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    name = method.replace(".", "_") + "_response"
    serial = f'"alipay_cert_sn":"{cert_sn}",' if cert_sn else ""
    return f'{{"{name}":{raw},{serial}"sign":"{sign(key, raw)}"}}'.encode()
