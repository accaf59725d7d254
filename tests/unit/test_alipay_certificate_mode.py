"""The Alipay adapter in certificate mode (公钥证书), offline: the SNs signed into every request,
answers verified with the certificate their `alipay_cert_sn` names (good, unknown SN, wrong
key, a rotated certificate found by reading the directory again), notifications verified with
Alipay's certificates (with and without `alipay_cert_sn` and `sign_type`, the send-time window
kept), and the settings and files checked at start-up. Certificates are made here with
`cryptography` for the repository's test keys."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from adapters.base import (
    AccountIdentifier,
    PayoutRequest,
    ProviderOutcomeUnknown,
    WebhookVerificationError,
)
from adapters.providers.alipay import AlipayProvider, AlipaySettings, certificates, signing
from adapters.providers.alipay.mapping import error_rule
from adapters.providers.alipay.webhooks import notification
from adapters.providers.rsa_keys import load_private_key
from adapters.providers.settings import ProviderContext
from gateway.domain.clock import FrozenClock
from gateway.domain.money import Money
from gateway.settings import SettingsError

KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "alipay" / "test-keys"
APP_KEY = load_private_key(KEYS / "app_private_key.pem")
ALIPAY_KEY = load_private_key(KEYS / "alipay_private_key.pem")
NEW_ALIPAY_KEY = rsa.generate_private_key(65537, 2048)  # after a rotation
NOW = datetime(2026, 3, 2, 10, 15, 30, tzinfo=UTC)
GATEWAY = "https://openapi.alipay.com/gateway.do"
APP_ID = "2021000100000001"
TRANSFER = "alipay.fund.trans.uni.transfer"
OK = {"code": "10000", "msg": "Success", "out_biz_no": "po01test", "order_id": "2026030211",
      "pay_fund_order_id": "2026030212", "status": "SUCCESS"}  # fmt: skip


def _issuer(label: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, label),
        ]
    )


def _certificate(
    issuer: x509.Name,
    serial: int,
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    signer: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
) -> bytes:
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"subject {serial}")]))
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(serial)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2031, 1, 1, tzinfo=UTC))
        .sign(signer, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class Files:
    directory: Path
    app_cert: Path
    root_cert: Path
    certs_dir: Path
    app_cert_sn: str
    root_cert_sn: str
    alipay_cert_sn: str
    new_alipay_cert: bytes  # not installed yet: a rotation
    new_alipay_cert_sn: str


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    directory = tmp_path_factory.mktemp("alipay-certs")
    ca = rsa.generate_private_key(65537, 2048)
    ecdsa = ec.generate_private_key(ec.SECP256R1())
    root_rsa = _issuer("Test Root R1")
    root_ec = _issuer("Test Root E1")
    root_cert = directory / "alipayRootCert.crt"
    root_cert.write_bytes(
        _certificate(root_rsa, 1, ca.public_key(), ca)
        + b"\n"
        + _certificate(root_ec, 2, ecdsa.public_key(), ecdsa)
    )
    app_cert = directory / f"appCertPublicKey_{APP_ID}.crt"
    app_cert.write_bytes(_certificate(_issuer("Test Class 1"), 10, APP_KEY.public_key(), ca))
    certs_dir = directory / "alipay-certs"
    certs_dir.mkdir()
    (certs_dir / "alipayCertPublicKey_RSA2.crt").write_bytes(
        _certificate(_issuer("Test Class 2"), 20, ALIPAY_KEY.public_key(), ca)
    )
    return Files(
        directory=directory,
        app_cert=app_cert,
        root_cert=root_cert,
        certs_dir=certs_dir,
        app_cert_sn=certificates.sn("CN=Test Class 1,O=Test CA,C=CN", 10),
        root_cert_sn=certificates.sn("CN=Test Root R1,O=Test CA,C=CN", 1),  # not the ECDSA one
        alipay_cert_sn=certificates.sn("CN=Test Class 2,O=Test CA,C=CN", 20),
        new_alipay_cert=_certificate(_issuer("Test Class 2"), 21, NEW_ALIPAY_KEY.public_key(), ca),
        new_alipay_cert_sn=certificates.sn("CN=Test Class 2,O=Test CA,C=CN", 21),
    )


def settings(files: Files, **overrides: Any) -> AlipaySettings:
    values: dict[str, Any] = {
        "base_url": GATEWAY,
        "app_id": APP_ID,
        "app_private_key_file": KEYS / "app_private_key.pem",
        "signing_mode": "certificate",
        "app_cert_file": files.app_cert,
        "alipay_root_cert_file": files.root_cert,
        "alipay_certs_dir": files.certs_dir,
        "clearing_account": "CNY:9100000000000203",
        "retry_attempts": 1,
    }
    values.update(overrides)
    return AlipaySettings(**values)


def adapter(files: Files, clock: FrozenClock | None = None, **overrides: Any) -> AlipayProvider:
    context = ProviderContext("test", "https://gateway.bank.example", clock or FrozenClock(NOW))
    return AlipayProvider(settings(files, **overrides), context, sleep=lambda _s: None)


# --- requests --------------------------------------------------------------------------------


def test_requests_carry_both_sns_and_sign_them(files: Files) -> None:
    params = adapter(files).client.params(TRANSFER, {"out_biz_no": "x"}, notify_url=None)
    assert (params["app_cert_sn"], params["alipay_root_cert_sn"]) == (
        files.app_cert_sn,
        files.root_cert_sn,
    )
    signed = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign").encode()
    assert "app_cert_sn=" in signed.decode() and "alipay_root_cert_sn=" in signed.decode()
    APP_KEY.public_key().verify(
        base64.b64decode(params["sign"]), signed, padding.PKCS1v15(), hashes.SHA256()
    )


def test_public_key_mode_sends_no_sn(files: Files) -> None:
    public = adapter(
        files,
        signing_mode="public_key",
        app_cert_file=None,
        alipay_root_cert_file=None,
        alipay_certs_dir=None,
        alipay_public_keys=[KEYS / "alipay_public_key.pem"],
    )
    params = public.client.params(TRANSFER, {"out_biz_no": "x"}, notify_url=None)
    assert "app_cert_sn" not in params and "alipay_root_cert_sn" not in params


# --- answers ---------------------------------------------------------------------------------


def _answer(key: rsa.RSAPrivateKey, cert_sn: str | None, value: dict[str, Any] = OK) -> bytes:
    return signing.response_text(TRANSFER, value, key, cert_sn=cert_sn)


def test_an_answer_is_verified_with_the_certificate_it_names(files: Files) -> None:
    client = adapter(files).client
    verify = lambda body: client.verify(signing.response_value(body, TRANSFER))  # noqa: E731
    assert verify(_answer(ALIPAY_KEY, files.alipay_cert_sn)) is None
    assert verify(_answer(ALIPAY_KEY, None)) is None  # no SN: any loaded certificate
    assert verify(_answer(ALIPAY_KEY, "0" * 32)) == "unknown_cert_sn"
    assert verify(_answer(NEW_ALIPAY_KEY, files.alipay_cert_sn)) == "wrong_key"
    assert verify(_answer(NEW_ALIPAY_KEY, None)) == "wrong_key"
    tampered = _answer(ALIPAY_KEY, files.alipay_cert_sn).replace(b"SUCCESS", b"SUCCESZ")
    assert verify(tampered) == "content_mismatch"


def test_an_unknown_sn_makes_the_directory_be_read_again(files: Files, tmp_path: Path) -> None:
    """Alipay rotated its certificate: the new file dropped next to the old one is found on the
    first answer naming it, without a restart."""
    certs_dir = tmp_path / "alipay-certs"
    certs_dir.mkdir()
    (certs_dir / "alipayCertPublicKey_RSA2.crt").write_bytes(
        (files.certs_dir / "alipayCertPublicKey_RSA2.crt").read_bytes()
    )
    client = adapter(files, alipay_certs_dir=certs_dir).client
    answer = signing.response_value(_answer(NEW_ALIPAY_KEY, files.new_alipay_cert_sn), TRANSFER)
    assert client.verify(answer) == "unknown_cert_sn"
    (certs_dir / "alipayCertPublicKey_RSA2_new.crt").write_bytes(files.new_alipay_cert)
    assert client.verify(answer) is None
    assert sorted(client.keys.ids()) == sorted([files.alipay_cert_sn, files.new_alipay_cert_sn])


@responses.activate
def test_a_success_under_an_unknown_sn_is_not_believed(files: Files) -> None:
    responses.add(responses.POST, GATEWAY, body=_answer(ALIPAY_KEY, "f" * 32))
    request = PayoutRequest(
        reference="po_01test",
        idempotency_key="po01test",
        amount=Money.parse("1.00", "CNY"),
        recipient=AccountIdentifier("alipay_user_id", "2088102000000001"),
        description="t",
    )
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        adapter(files).payout(request)
    assert raised.value.code == "provider_bad_signature"
    sent = dict(parse_qsl(str(responses.calls[0].request.body)))
    assert sent["app_cert_sn"] == files.app_cert_sn
    responses.replace(responses.POST, GATEWAY, body=_answer(ALIPAY_KEY, files.alipay_cert_sn))
    assert adapter(files).payout(request).state == "succeeded"


@pytest.mark.parametrize(
    "sub_code",
    [
        "isv.missing-app-cert-sn",
        "isv.app-cert-not-exist",
        "isv.missing-alipay-root-cert-sn",
        "isv.invalid-alipay-root-cert-sn",
    ],
)
def test_certificate_refusals_are_credential_problems(sub_code: str) -> None:
    rule = error_rule({"code": "40002", "sub_code": sub_code})
    assert (rule.outcome, rule.code) == ("rejected", "provider_authentication_failed")


# --- notifications ---------------------------------------------------------------------------


CHANGED = {
    "notify_id": "2026030200222181533000000000000001",
    "msg_method": "alipay.fund.trans.order.changed",
    "app_id": APP_ID,
    "charset": "utf-8",
    "version": "1.1",
    "biz_content": json.dumps({"out_biz_no": "po01test", "order_id": "1", "status": "SUCCESS"}),
}
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


def _reason(provider: AlipayProvider, body: bytes) -> str | None:
    try:
        provider.verify_and_parse_webhook("POST", FORM, body)
    except WebhookVerificationError as exc:
        return exc.reason
    return None


@pytest.mark.parametrize("sign_type_signed", [True, False])
def test_notifications_verify_with_alipays_certificates(
    files: Files, sign_type_signed: bool
) -> None:
    provider = adapter(files)
    for cert_sn in (files.alipay_cert_sn, None):
        body = notification(
            CHANGED, ALIPAY_KEY, sign_type_signed=sign_type_signed, now=NOW, cert_sn=cert_sn
        )
        note = provider.verify_and_parse_webhook("POST", FORM, body)
        assert (note.kind, note.idempotency_key) == ("payout", "po01test")


def test_notification_refusals_in_certificate_mode(files: Files) -> None:
    provider = adapter(files)
    good = files.alipay_cert_sn
    assert _reason(provider, notification(CHANGED, ALIPAY_KEY, now=NOW, cert_sn="0" * 32)) == (
        "unknown_cert_sn"
    )
    assert _reason(provider, notification(CHANGED, NEW_ALIPAY_KEY, now=NOW, cert_sn=good)) == (
        "wrong_key"
    )
    assert _reason(provider, notification(CHANGED, NEW_ALIPAY_KEY, now=NOW)) == "wrong_key"
    changed = notification(CHANGED, ALIPAY_KEY, now=NOW, cert_sn=good).replace(b"po01", b"po02")
    assert _reason(provider, changed) == "content_mismatch"
    stale = notification(CHANGED, ALIPAY_KEY, now=NOW - timedelta(hours=49), cert_sn=good)
    assert _reason(provider, stale) == "stale_timestamp"
    unsigned = notification(CHANGED, ALIPAY_KEY, now=NOW, cert_sn=good).replace(b"sign=", b"x=")
    assert _reason(provider, unsigned) == "missing_signature"


def test_a_public_key_mode_adapter_ignores_alipay_cert_sn(files: Files) -> None:
    public = adapter(
        files,
        signing_mode="public_key",
        app_cert_file=None,
        alipay_root_cert_file=None,
        alipay_certs_dir=None,
        alipay_public_keys=[KEYS / "alipay_public_key.pem"],
    )
    body = notification(CHANGED, ALIPAY_KEY, now=NOW, cert_sn="0" * 32)
    assert _reason(public, body) is None


# --- settings and start-up -------------------------------------------------------------------


def test_certificate_mode_settings_name_what_is_missing_or_contradictory(files: Files) -> None:
    bare = AlipaySettings(
        base_url=GATEWAY,
        app_id=APP_ID,
        app_private_key_file=KEYS / "app_private_key.pem",
        signing_mode="certificate",
        clearing_account="CNY:9100000000000203",
    )
    text = "\n".join(bare.problems("production"))
    for variable in ("APP_CERT_FILE", "ALIPAY_ROOT_CERT_FILE", "ALIPAY_CERTS"):
        assert f"GATEWAY_ALIPAY_{variable}" in text
    assert "ALIPAY_PUBLIC_KEYS" not in text
    assert settings(files).problems("production") == []
    both = settings(files, alipay_public_keys=[KEYS / "alipay_public_key.pem"])
    assert (
        "GATEWAY_ALIPAY_ALIPAY_PUBLIC_KEYS is set but GATEWAY_ALIPAY_SIGNING_MODE is certificate"
        in ("\n".join(both.problems("production")))
    )
    stray = AlipaySettings(
        base_url=GATEWAY,
        app_id=APP_ID,
        app_private_key_file=KEYS / "app_private_key.pem",
        alipay_public_keys=[KEYS / "alipay_public_key.pem"],
        app_cert_file=files.app_cert,
        clearing_account="CNY:9100000000000203",
    )
    assert stray.problems("production") == [
        "GATEWAY_ALIPAY_APP_CERT_FILE is set but GATEWAY_ALIPAY_SIGNING_MODE is public_key: "
        "it would be ignored"
    ]
    with pytest.raises(ValueError, match="signing_mode"):
        AlipaySettings(signing_mode="cert")
    assert AlipaySettings(alipay_certs="/a.crt, /b.crt").alipay_certs == [
        Path("/a.crt"),
        Path("/b.crt"),
    ]


def test_the_embedded_sandbox_files_are_the_defaults(tmp_path: Path) -> None:
    credentials = AlipaySettings(signing_mode="certificate").credentials(tmp_path)
    certs = tmp_path / "alipay-sandbox" / "certs"
    assert credentials.app_cert_file == certs / f"appCertPublicKey_{APP_ID}.crt"
    assert credentials.alipay_root_cert_file == certs / "alipayRootCert.crt"
    assert credentials.alipay_certs_dir == certs / "alipay-certs"
    assert credentials.alipay_public_keys_dir is None


def test_start_up_refuses_unusable_files(files: Files, tmp_path: Path) -> None:
    other_app = tmp_path / "other.crt"
    other_app.write_bytes(
        _certificate(_issuer("X"), 5, NEW_ALIPAY_KEY.public_key(), NEW_ALIPAY_KEY)
    )
    only_ecdsa = tmp_path / "ecdsa-root.crt"
    signer = ec.generate_private_key(ec.SECP256R1())
    only_ecdsa.write_bytes(_certificate(_issuer("E"), 6, signer.public_key(), signer))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ({"app_cert_file": other_app}, "not for the application's private key"),
        ({"app_cert_file": tmp_path / "missing.crt"}, "cannot read the application certificate"),
        ({"alipay_root_cert_file": only_ecdsa}, "no RSA certificate"),
        ({"alipay_root_cert_file": KEYS / "app_public_key.pem"}, "no certificate in the"),
        ({"alipay_certs_dir": empty}, "no Alipay certificate"),
        ({"alipay_certs": [KEYS / "alipay_public_key.pem"]}, "no certificate"),
    ]
    for overrides, message in cases:
        with pytest.raises(SettingsError, match=message):
            adapter(files, **overrides)
