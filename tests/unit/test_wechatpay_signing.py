"""WeChat Pay API v3 cryptography against the REAL published vectors (tests/fixtures/wechatpay,
from the official wechatpay-go and wechatpay-java SDKs; see PROVENANCE.md), then our own
round trips: the request signature, key rotation, and each refusal with its own reason."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from adapters.base import WebhookVerificationError
from adapters.providers.rsa_keys import KeyRing, load_private_key, load_public_key_file
from adapters.providers.wechatpay import signing, webhooks
from tests.fixtures import assert_provenance

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wechatpay"
KEYS = FIXTURES / "test-keys"
BODY = (FIXTURES / "go_notify_test_body.json").read_bytes()
SIGNATURE = (FIXTURES / "go_notify_test_signature.b64").read_text().strip()
SERIAL = "D7CE59D1F522D701"
TIMESTAMP = "1624523846"
NONCE = "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz"
SIGNED_AT = datetime.fromtimestamp(int(TIMESTAMP), UTC)
APIV3_KEY = b"testMchAPIv3Key0"  # the SDKs' test key: 16 bytes, so AES-128-GCM
PLAINTEXT = (
    b'{"mchid":"1234567890","appid":"054aa7d7a2a54ab5898df65bd96f001c",'
    b'"create_time":"2020-06-30T12:12:00+08:00",'
    b'"out_contract_code":"21640bdbd08e473e828f3206a2741c6e"}'
)
HEADERS = {
    "Wechatpay-Timestamp": TIMESTAMP,
    "Wechatpay-Nonce": NONCE,
    "Wechatpay-Signature": SIGNATURE,
    "Wechatpay-Serial": SERIAL,
    "Content-Type": "application/json",
}


def platform_keys() -> KeyRing:
    return KeyRing.from_files([(None, FIXTURES / "go_notify_test_platform_cert.pem")])


def test_the_fixtures_are_the_published_bytes() -> None:
    """Every fixture is byte-identical to the published vector (the digests in PROVENANCE.md)."""
    assert_provenance(FIXTURES)


# --- the real callback ---------------------------------------------------------------------------


def test_the_certificate_serial_selects_the_key() -> None:
    assert load_public_key_file(FIXTURES / "go_notify_test_platform_cert.pem").serial == SERIAL
    assert platform_keys().ids() == [SERIAL]


def test_the_genuine_callback_verifies_at_its_own_time() -> None:
    verified = signing.verify(HEADERS, BODY, platform_keys(), now=SIGNED_AT + timedelta(seconds=5))
    assert (verified.serial, verified.nonce, verified.timestamp) == (SERIAL, NONCE, SIGNED_AT)


def test_the_real_clock_finds_the_genuine_callback_stale() -> None:
    with pytest.raises(signing.SignatureError) as raised:
        signing.verify(HEADERS, BODY, platform_keys(), now=datetime.now(UTC))
    assert raised.value.reason == "stale_timestamp"


def test_the_window_is_five_minutes_either_way() -> None:
    keys = platform_keys()
    for offset in (timedelta(minutes=5), -timedelta(minutes=5)):
        signing.verify(HEADERS, BODY, keys, now=SIGNED_AT + offset)
    for offset in (timedelta(minutes=5, seconds=1), -timedelta(minutes=5, seconds=1)):
        with pytest.raises(signing.SignatureError) as raised:
            signing.verify(HEADERS, BODY, keys, now=SIGNED_AT + offset)
        assert raised.value.reason == "stale_timestamp"


def test_the_genuine_resource_decrypts_to_the_published_plaintext() -> None:
    resource = json.loads(BODY)["resource"]
    assert (
        signing.decrypt_resource(
            APIV3_KEY,
            nonce_str=resource["nonce"],
            associated_data=resource["associated_data"],
            ciphertext=resource["ciphertext"],
        )
        == PLAINTEXT
    )
    java = json.loads((FIXTURES / "java_wechat_pay_notification.json").read_text())["resource"]
    assert java == resource  # the Java SDK's test publishes the same sealed resource


def test_the_whole_notification_verifies_and_decrypts() -> None:
    opened = webhooks.verify(
        "POST",
        HEADERS,
        BODY,
        keys=platform_keys(),
        apiv3_key=APIV3_KEY,
        now=SIGNED_AT,
        mchid="1234567890",
    )
    assert opened.resource == json.loads(PLAINTEXT)
    assert opened.envelope["event_type"] == "PAYSCORE.USER_OPEN_SERVICE"
    note = webhooks.parse(opened)
    # Not a transfer or a refund: recorded and acknowledged, never applied to a payout.
    assert (note.event_id, note.kind, note.result) == (
        "3119dfba-e649-5eec-ab1e-3412bc4d2e17",
        "other",
        None,
    )


# --- what must be refused, each for its own reason ----------------------------------------------


def _reason(headers: dict[str, str], body: bytes, keys: KeyRing | None = None) -> str:
    with pytest.raises(signing.SignatureError) as raised:
        signing.verify(headers, body, keys or platform_keys(), now=SIGNED_AT)
    return raised.value.reason


def test_a_changed_byte_is_a_content_mismatch() -> None:
    changed = BODY.replace(b"PAYSCORE.USER_OPEN_SERVICE", b"PAYSCORE.USER_OPEN_SERVICF")
    assert changed != BODY and len(changed) == len(BODY)
    assert _reason(HEADERS, changed) == "content_mismatch"
    assert _reason({**HEADERS, "Wechatpay-Nonce": NONCE[:-1] + "c"}, BODY) == "content_mismatch"


def test_a_wrong_key_is_told_apart_from_a_changed_byte() -> None:
    other = load_public_key_file(KEYS / "PUB_KEY_ID_0114232134912410000000000000.pem")
    impostor = KeyRing({SERIAL: other})  # the right serial, another key behind it
    assert _reason(HEADERS, BODY, impostor) == "wrong_key"


def test_an_unknown_serial_is_its_own_reason() -> None:
    rotated = KeyRing.from_files([(None, KEYS / "platform_cert.pem")])
    assert _reason(HEADERS, BODY, rotated) == "unknown_serial"


def test_a_tampered_timestamp_is_caught_by_the_signature_not_only_the_window() -> None:
    headers = {**HEADERS, "Wechatpay-Timestamp": str(int(TIMESTAMP) + 1)}
    assert _reason(headers, BODY) == "content_mismatch"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({**HEADERS, "Wechatpay-Signature": ""}, "missing_signature_headers"),
        ({**HEADERS, "Wechatpay-Timestamp": "2021-06-24"}, "malformed_timestamp"),
        ({**HEADERS, "Wechatpay-Signature": "not base64!"}, "malformed_signature"),
    ],
)  # fmt: skip
def test_malformed_headers(headers: dict[str, str], reason: str) -> None:
    assert _reason(headers, BODY) == reason


def test_a_certificate_outside_its_validity_is_refused() -> None:
    later = datetime(2031, 4, 26, tzinfo=UTC)  # the go test certificate expires 2031-04-25
    stamp = str(int(later.timestamp()))
    key = load_private_key(KEYS / "platform_private_key.pem")
    headers = signing.signed_headers(BODY, key=key, serial=SERIAL, timestamp=int(stamp))
    with pytest.raises(signing.SignatureError) as raised:
        signing.verify(headers, BODY, platform_keys(), now=later)
    assert raised.value.reason == "key_not_valid_at_timestamp"


def test_a_wrong_apiv3_key_fails_decryption() -> None:
    with pytest.raises(WebhookVerificationError) as raised:
        webhooks.verify(
            "POST",
            HEADERS,
            BODY,
            keys=platform_keys(),
            apiv3_key=b"testMchAPIv3Key1",
            now=SIGNED_AT,
        )
    assert raised.value.reason == "decryption_failed"


def test_notification_checks_have_distinct_reasons() -> None:
    keys = platform_keys()

    def reason(method: str = "POST", **changes: object) -> str:
        values: dict[str, object] = {
            "keys": keys,
            "apiv3_key": APIV3_KEY,
            "now": SIGNED_AT,
            "mchid": "1234567890",
        }
        values.update(changes)
        with pytest.raises(WebhookVerificationError) as raised:
            webhooks.verify(method, HEADERS, BODY, **values)  # type: ignore[arg-type]
        return raised.value.reason

    reasons = {
        reason("GET"),
        reason(now=datetime.now(UTC)),
        reason(keys=KeyRing.from_files([(None, KEYS / "platform_cert.pem")])),
        reason(apiv3_key=b"0" * 32),
        reason(mchid="1900000001"),
    }
    assert reasons == {
        "method_not_allowed",
        "stale_timestamp",
        "unknown_serial",
        "decryption_failed",
        "merchant_mismatch",
    }


# --- our own signatures --------------------------------------------------------------------------


def test_request_signature_matches_the_documented_message() -> None:
    key = load_private_key(KEYS / "merchant_private_key.pem")
    body = b'{"appid":"wxd678efh567hg6787"}'
    header = signing.authorization(
        mchid="1900000001",
        serial_no="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        key=key,
        method="POST",
        url="/v3/fund-app/mch-transfer/transfer-bills",
        body=body,
        timestamp=1554208460,
        nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",
    )
    assert header.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000001",')
    fields = signing.parse_authorization(header)
    assert fields.keys() == {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}
    message = (
        b"POST\n/v3/fund-app/mch-transfer/transfer-bills\n1554208460\n"
        b"593BEC0C930BF1AFEB40B4A08C8FB242\n" + body + b"\n"
    )
    public = load_public_key_file(KEYS / "merchant_public_key.pem").key
    public.verify(
        base64.b64decode(fields["signature"]), message, padding.PKCS1v15(), hashes.SHA256()
    )
    # A GET signs an empty body, and the query string is part of the URL.
    get = signing.request_message("get", "/v3/pay/transactions/id/42?mchid=1900000001", 1, "n", b"")
    assert get == b"GET\n/v3/pay/transactions/id/42?mchid=1900000001\n1\nn\n\n"


def test_round_trip_with_a_public_key_id_and_rotation(tmp_path: Path) -> None:
    """The newer "WeChat Pay public key" (PUB_KEY_ID_…) and a legacy certificate, at once."""
    key_id = "PUB_KEY_ID_0114232134912410000000000000"
    keys = KeyRing.from_files(
        [(key_id, KEYS / f"{key_id}.pem"), (None, KEYS / "platform_cert.pem")]
    )
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    stamp = int(now.timestamp())
    new = load_private_key(KEYS / "wechatpay_public_key_private.pem")
    old = load_private_key(KEYS / "platform_private_key.pem")
    body = b'{"ok":true}'
    assert (
        signing.verify(
            signing.signed_headers(body, key=new, serial=key_id, timestamp=stamp),
            body,
            keys,
            now=now,
        ).serial
        == key_id
    )
    old_serial = "3D1F6E2A9B5C4E7F8A0B1C2D3E4F5A6B7C8D9E0F"
    assert (
        signing.verify(
            signing.signed_headers(body, key=old, serial=old_serial, timestamp=stamp),
            body,
            keys,
            now=now,
        ).serial
        == old_serial
    )
    # Encrypting a sensitive field goes to a public key id before a certificate.
    assert keys.newest() is not None and keys.newest()[0] == key_id  # type: ignore[index]


def test_a_key_dropped_into_the_directory_is_picked_up(tmp_path: Path) -> None:
    directory = tmp_path / "platform-keys"
    directory.mkdir()
    keys = KeyRing(directory=directory, reload_seconds=3600)  # the change alone triggers it
    key_id = "PUB_KEY_ID_0114232134912410000000000000"
    assert keys.get(key_id) is None
    (directory / f"{key_id}.pem").write_bytes((KEYS / f"{key_id}.pem").read_bytes())
    found = keys.get(key_id)
    assert found is not None and found.serial is None


def test_sensitive_fields_are_oaep_encrypted_to_the_platform_key() -> None:
    public = load_public_key_file(KEYS / "platform_cert.pem").key
    private = load_private_key(KEYS / "platform_private_key.pem")
    sealed = signing.encrypt_sensitive(public, "张三")
    sha1 = hashes.SHA1()  # noqa: S303 - the scheme WeChat Pay specifies
    oaep = padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None)
    assert private.decrypt(base64.b64decode(sealed), oaep).decode() == "张三"
    assert isinstance(private, rsa.RSAPrivateKey)


def test_a_32_byte_production_key_round_trips() -> None:
    key = b"0123456789abcdef0123456789abcdef"
    sealed = signing.encrypt_resource(key, b'{"a":1}', associated_data="mch_payment")
    assert (
        signing.decrypt_resource(
            key,
            nonce_str=sealed["nonce"],
            associated_data="mch_payment",
            ciphertext=sealed["ciphertext"],
        )
        == b'{"a":1}'
    )
    with pytest.raises(signing.SignatureError) as raised:
        signing.decrypt_resource(
            key,
            nonce_str=sealed["nonce"],
            associated_data="refund",
            ciphertext=sealed["ciphertext"],
        )
    assert raised.value.reason == "decryption_failed"
