"""Standard Webhooks signing: the published test vector, rotation signatures, secret format."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.security.webhook_signing import (
    delivery_headers,
    is_secret,
    new_secret,
    signature_header,
)

# From standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py
# (test_sign_function): the reference implementations all agree on this vector.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_PAYLOAD = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signing_reproduces_the_published_vector() -> None:
    assert (
        signature_header([VECTOR_SECRET], VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD)
        == VECTOR_SIGNATURE
    )


def test_one_signature_per_secret_newest_first() -> None:
    other = new_secret()
    header = signature_header(
        [other, VECTOR_SECRET], VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD
    )
    first, second = header.split(" ")
    assert second == VECTOR_SIGNATURE
    assert first.startswith("v1,") and first != VECTOR_SIGNATURE


def test_official_verifier_accepts_either_secret_during_rotation() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"id":"evt_x","type":"transfer.succeeded"}'
    headers = delivery_headers([new, old], "evt_01", int(time.time()), body)
    assert Webhook(new).verify(body, headers) == {"id": "evt_x", "type": "transfer.succeeded"}
    assert Webhook(old).verify(body, headers)["id"] == "evt_x"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body + b" ", headers)


def test_secrets_follow_the_standard_format() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert is_secret(secret)
    assert new_secret() != secret
    assert is_secret(VECTOR_SECRET)  # 24 bytes, the minimum
    assert not is_secret("whsec_" + base64.b64encode(b"short").decode())
    assert not is_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert not is_secret("whsec_not base64!")


def test_signing_refuses_what_the_spec_forbids() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        signature_header([], "evt_1", VECTOR_TIMESTAMP, b"{}")
    with pytest.raises(ValueError, match="must not contain"):
        signature_header([VECTOR_SECRET], "evt.1", VECTOR_TIMESTAMP, b"{}")


def test_headers_carry_id_and_integer_timestamp() -> None:
    moment = int(datetime(2026, 1, 2, tzinfo=UTC).timestamp())
    headers = delivery_headers([VECTOR_SECRET], "evt_abc", moment, b"{}")
    assert headers["webhook-id"] == "evt_abc"
    assert headers["webhook-timestamp"] == str(moment)
    assert headers["webhook-signature"].startswith("v1,")
