"""Standard Webhooks signatures (symmetric `v1`, HMAC-SHA256) for outgoing deliveries.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}` keyed with the base64-decoded
part of a `whsec_` secret. During a secret rotation a delivery carries one `v1,` signature per
valid secret, space-separated, so a receiver holding either secret verifies it. Signing is the
`standardwebhooks` reference implementation itself, so what we send is what its verifiers
(in every language) expect.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes


def new_secret() -> str:
    """A fresh endpoint secret, `whsec_` + base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def is_secret(value: str) -> bool:
    """Whether `value` is a well-formed `whsec_` secret of 24 to 64 bytes."""
    if not value.startswith(PREFIX):
        return False
    try:
        raw = base64.b64decode(value.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(raw) <= 64


def signature_header(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one `v1,<base64>` per secret, newest secret first."""
    if not secrets_:
        raise ValueError("at least one secret is needed to sign")
    if "." in msg_id:
        raise ValueError("a message id must not contain '.'")  # the spec's delimiter
    moment = datetime.fromtimestamp(timestamp, UTC)
    payload = body.decode()
    return " ".join(
        Webhook(secret).sign(msg_id=msg_id, timestamp=moment, data=payload) for secret in secrets_
    )


def delivery_headers(
    secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers of one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_, msg_id, timestamp, body),
    }
