"""WeChat Pay API v3 cryptography: request signatures, answer/notification verification, the
AEAD_AES_256_GCM notification resource, and RSA-OAEP for sensitive request fields.

Pure functions over bytes (no HTTP). Sources: the WeChat Pay API v3 merchant documentation
(pay.weixin.qq.com/doc/v3/merchant: "签名生成", "签名验证", "回调报文解密", "敏感信息加密") and
the official SDKs wechatpay-go (core/auth, core/notify) and wechatpay-java, whose published
test vector `tests/unit/test_wechatpay_signing.py` checks.

* A request is signed over ``METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n`` (URL = path and query
  as sent, body empty for a GET) with SHA256withRSA (PKCS#1 v1.5) and the merchant's API key;
  the `Authorization` header carries mchid, nonce, timestamp, the merchant certificate serial
  and the signature.
* Answers and notifications are signed by WeChat Pay over ``timestamp\\nnonce\\nbody\\n``
  (`Wechatpay-Timestamp`, `-Nonce`, `-Signature`, `-Serial`): the key is chosen by the serial
  (a platform certificate serial, or a `PUB_KEY_ID_…` WeChat Pay public key id), the
  timestamp must be within the tolerance of our clock.
* `verify` raises `SignatureError(reason)` with a distinct reason per failed check; a signature
  that does not verify is told apart as `content_mismatch` (made by this key over other bytes:
  the message was changed) or `wrong_key` (not made by this key at all), by recovering the
  digest the signature carries.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.providers.rsa_keys import KeyRing

SCHEME = "WECHATPAY2-SHA256-RSA2048"
HEADER_TIMESTAMP = "Wechatpay-Timestamp"
HEADER_NONCE = "Wechatpay-Nonce"
HEADER_SIGNATURE = "Wechatpay-Signature"
HEADER_SERIAL = "Wechatpay-Serial"
# The window WeChat Pay's SDKs allow between a signed timestamp and the receiver's clock.
TOLERANCE = timedelta(minutes=5)
AEAD_ALGORITHM = "AEAD_AES_256_GCM"


class SignatureError(ValueError):
    """A signature or encrypted resource did not check out; `reason` says which check."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def nonce() -> str:
    """A fresh 32-character request nonce."""
    return secrets.token_hex(16).upper()


def _rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def request_message(method: str, url: str, timestamp: int, nonce_str: str, body: bytes) -> bytes:
    """What a request signature covers; `url` is the path with its query string."""
    return b"".join(
        (
            method.upper().encode(),
            b"\n",
            url.encode(),
            b"\n",
            str(timestamp).encode(),
            b"\n",
            nonce_str.encode(),
            b"\n",
            body,
            b"\n",
        )
    )


def authorization(
    *,
    mchid: str,
    serial_no: str,
    key: rsa.RSAPrivateKey,
    method: str,
    url: str,
    body: bytes,
    timestamp: int,
    nonce_str: str,
) -> str:
    """The `Authorization` header of one request."""
    signature = _rsa_sign(key, request_message(method, url, timestamp, nonce_str, body))
    return (
        f'{SCHEME} mchid="{mchid}",nonce_str="{nonce_str}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def parse_authorization(header: str) -> dict[str, str]:
    """The fields of an `Authorization` header (tests, and to check what was sent)."""
    scheme, _sep, rest = header.strip().partition(" ")
    if scheme != SCHEME:
        raise SignatureError("unsupported_scheme")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or len(value) < 2 or value[0] != '"' or value[-1] != '"':
            raise SignatureError("malformed_authorization")
        fields[name] = value[1:-1]
    return fields


def message(timestamp: str, nonce_str: str, body: bytes) -> bytes:
    """What WeChat Pay's signature on an answer or notification covers."""
    return timestamp.encode() + b"\n" + nonce_str.encode() + b"\n" + body + b"\n"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


@dataclass(frozen=True)
class Verified:
    """What a verified answer or notification was signed with."""

    serial: str
    timestamp: datetime
    nonce: str


def check_rsa(public: rsa.RSAPublicKey, signature: bytes, content: bytes) -> None:
    """SHA256withRSA; on failure, tell a changed message from a signature by another key."""
    try:
        public.verify(signature, content, padding.PKCS1v15(), hashes.SHA256())
        return
    except InvalidSignature:
        pass
    try:
        public.recover_data_from_signature(signature, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        raise SignatureError("wrong_key") from None
    raise SignatureError("content_mismatch")


def verify(
    headers: Mapping[str, str],
    body: bytes,
    keys: KeyRing,
    *,
    now: datetime,
    tolerance: timedelta = TOLERANCE,
) -> Verified:
    """Check the `Wechatpay-*` signature of an answer or notification.

    Reasons: `missing_signature_headers`, `malformed_timestamp`, `stale_timestamp`,
    `unknown_serial`, `key_not_valid_at_timestamp`, `malformed_signature`, `wrong_key`,
    `content_mismatch`.
    """
    stamp = _header(headers, HEADER_TIMESTAMP)
    nonce_str = _header(headers, HEADER_NONCE)
    signature = _header(headers, HEADER_SIGNATURE)
    serial = _header(headers, HEADER_SERIAL)
    if not (stamp and nonce_str and signature and serial):
        raise SignatureError("missing_signature_headers")
    stamp = stamp.strip()
    if not stamp.isdigit() or len(stamp) > 12:
        raise SignatureError("malformed_timestamp")
    moment = datetime.fromtimestamp(int(stamp), UTC)
    if abs(now - moment) > tolerance:
        raise SignatureError("stale_timestamp")
    key = keys.get(serial.strip())
    if key is None:
        raise SignatureError("unknown_serial")
    if not key.valid_at(moment):
        raise SignatureError("key_not_valid_at_timestamp")
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed_signature") from None
    check_rsa(key.key, raw, message(stamp, nonce_str, body))
    return Verified(serial.strip(), moment, nonce_str)


def signed_headers(
    body: bytes,
    *,
    key: rsa.RSAPrivateKey,
    serial: str,
    timestamp: int,
    nonce_str: str | None = None,
) -> dict[str, str]:
    """Valid `Wechatpay-*` headers for `body` (tests; the sandbox has its own copy)."""
    nonce_value = nonce_str or nonce()
    return {
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_NONCE: nonce_value,
        HEADER_SIGNATURE: _rsa_sign(key, message(str(timestamp), nonce_value, body)),
        HEADER_SERIAL: serial,
    }


# --- the notification resource -------------------------------------------------------------------


def decrypt_resource(
    apiv3_key: bytes, *, nonce_str: str, associated_data: str, ciphertext: str
) -> bytes:
    """Open an `encrypt-resource`: AES-GCM with the APIv3 key (its length picks AES-128/192/256:
    production keys are 32 bytes, the SDKs' published test key is 16), the 12-byte nonce and the
    associated data as sent; the base64 ciphertext ends with the 16-byte tag."""
    if len(apiv3_key) not in (16, 24, 32):
        raise SignatureError("bad_apiv3_key_length")
    try:
        sealed = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed_resource") from None
    try:
        return AESGCM(apiv3_key).decrypt(nonce_str.encode(), sealed, associated_data.encode())
    except (InvalidTag, ValueError):
        raise SignatureError("decryption_failed") from None


def encrypt_resource(
    apiv3_key: bytes, plaintext: bytes, *, associated_data: str, nonce_str: str | None = None
) -> dict[str, str]:
    """An `encrypt-resource` object (tests)."""
    nonce_value = nonce_str or secrets.token_hex(6)
    sealed = AESGCM(apiv3_key).encrypt(nonce_value.encode(), plaintext, associated_data.encode())
    return {
        "algorithm": AEAD_ALGORITHM,
        "ciphertext": base64.b64encode(sealed).decode(),
        "associated_data": associated_data,
        "nonce": nonce_value,
    }


def encrypt_sensitive(public: rsa.RSAPublicKey, plaintext: str) -> str:
    """A sensitive request field (the payee's name), RSA-OAEP (SHA-1, MGF1-SHA-1) to the
    platform key named in the request's `Wechatpay-Serial` header."""
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303 - the scheme WeChat Pay specifies
    return base64.b64encode(public.encrypt(plaintext.encode(), oaep)).decode()
