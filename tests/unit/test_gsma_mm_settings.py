"""adapters/providers/gsma_mm/settings.py: mutual TLS from the environment to the wire.

`GATEWAY_GSMA_MM_CLIENT_CERT`, `_CLIENT_KEY` and `_CA_BUNDLE` go through the registry (the path
`serve` takes: settings read once, the adapter built from them) to the adapter's session, and a
loopback HTTPS server that demands a client certificate (a throwaway CA made here) checks that
the token request and the API call present it, and that the provider's certificate is verified
against the configured bundle.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from werkzeug.serving import make_server

from adapters.base import AccountIdentifier, ProviderUnavailable
from adapters.providers.gsma_mm import GsmaMmProvider
from adapters.providers.gsma_mm_sandbox import GsmaMmSandbox
from adapters.providers.registry import ProviderRegistry, load_provider_settings
from gateway.settings import SettingsError

# The registry tests' autouse fixture (no GATEWAY_* from the outside) and settings helper.
from tests.unit.test_provider_registry import _clean_environment as _clean_environment
from tests.unit.test_provider_registry import gateway_settings

CLIENT_ID, CLIENT_SECRET = "tls-client", "tls-secret"


# --- a throwaway PKI -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_combined: Path  # certificate and key in one file


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=usage is None, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("Test Provider CA", ca_key, None)
    issued = {}
    for role, usage in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        issued[role] = (_issue(f"{role}.test", key, (ca.subject, ca_key), usage=usage), key)
    files = {
        "ca.pem": _pem(ca),
        "server.pem": _pem(issued["server"][0]),
        "server.key": _key_pem(issued["server"][1]),
        "client.pem": _pem(issued["client"][0]),
        "client.key": _key_pem(issued["client"][1]),
        "client-combined.pem": _pem(issued["client"][0]) + _key_pem(issued["client"][1]),
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return Pki(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        client_combined=folder / "client-combined.pem",
    )


# --- settings -> registry -> session -------------------------------------------------------------


def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str | Path) -> GsmaMmProvider:
    """The gsma_mm adapter the way `serve` builds it, from GATEWAY_GSMA_MM_* variables."""
    for name, value in env.items():
        monkeypatch.setenv(f"GATEWAY_GSMA_MM_{name.upper()}", str(value))
    registry = ProviderRegistry.from_settings(
        gateway_settings(providers="gsma_mm", data_dir=tmp_path)
    )
    adapter = registry.get("gsma_mm")
    assert isinstance(adapter, GsmaMmProvider)
    return adapter


def test_mtls_variables_reach_the_adapters_session(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = build(
        tmp_path,
        monkeypatch,
        client_cert=pki.client_cert,
        client_key=pki.client_key,
        ca_bundle=pki.ca,
    )
    try:
        assert adapter.settings.tls is not None
        assert adapter.session.cert == (str(pki.client_cert), str(pki.client_key))
        assert adapter.session.verify == str(pki.ca)
        assert adapter.client.session is adapter.session  # the API calls use it
    finally:
        adapter.close()


def test_a_certificate_file_holding_its_key_and_the_system_trust_store(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = build(tmp_path, monkeypatch, client_cert=pki.client_combined)
    try:
        assert adapter.session.cert == str(pki.client_combined)
        assert adapter.session.verify is True  # no bundle: the system's CAs
    finally:
        adapter.close()


def test_without_tls_variables_the_session_is_plain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = build(tmp_path, monkeypatch)
    try:
        assert adapter.settings.tls is None
        assert (adapter.session.cert, adapter.session.verify) == (None, True)
    finally:
        adapter.close()


def test_bad_tls_settings_stop_start_up(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_GSMA_MM_CLIENT_KEY", str(pki.client_key))
    with pytest.raises(SettingsError, match="client_key needs client_cert"):
        load_provider_settings(gateway_settings(providers="gsma_mm", data_dir=tmp_path))
    with pytest.raises(ValueError, match=r"missing\.pem is not a readable file"):
        build(tmp_path, monkeypatch, client_cert=tmp_path / "missing.pem")


# --- over a loopback TLS server that demands a client certificate ---------------------------------


@dataclass
class TlsProvider:
    base_url: str
    client_certificates: list[str | None]


@pytest.fixture
def tls_provider(pki: Pki) -> Iterator[TlsProvider]:
    """The GSMA sandbox (OAuth 2.0) behind HTTPS on loopback, refusing clients without a
    certificate from the test CA; records the certificate each request came with."""
    sandbox = GsmaMmSandbox(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    seen: list[str | None] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        seen.append(environ.get("SSL_CLIENT_CERT"))
        return sandbox.app(environ, start_response)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.load_verify_locations(pki.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TlsProvider(f"https://127.0.0.1:{server.server_port}", seen)
    finally:
        server.shutdown()
        thread.join(timeout=5)


def tls_adapter(
    tls_provider: TlsProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str | Path
) -> GsmaMmProvider:
    return build(
        tmp_path,
        monkeypatch,
        base_url=tls_provider.base_url,
        auth="oauth2",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        clearing_account="KES:9100000000000201",
        connect_timeout_seconds="2",
        read_timeout_seconds="5",
        retry_attempts="1",
        **env,
    )


def test_the_token_request_and_the_api_call_present_the_client_certificate(
    pki: Pki, tls_provider: TlsProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = tls_adapter(
        tls_provider,
        tmp_path,
        monkeypatch,
        client_cert=pki.client_cert,
        client_key=pki.client_key,
        ca_bundle=pki.ca,
    )
    try:
        name = adapter.lookup_account(AccountIdentifier("msisdn", "+254712345601"))
    finally:
        adapter.close()

    assert name.full_name == "Wanjiru Kamau"
    presented = pki.client_cert.read_text().strip()
    assert [seen and seen.strip() for seen in tls_provider.client_certificates] == [
        presented,  # POST /oauth/token
        presented,  # GET /accounts/msisdn/.../accountname
    ]


@pytest.mark.parametrize("missing", ["client certificate", "CA bundle"])
def test_without_the_certificate_or_the_bundle_nothing_gets_through(
    pki: Pki,
    tls_provider: TlsProvider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    missing: str,
) -> None:
    env: dict[str, Path] = (
        {"ca_bundle": pki.ca}
        if missing == "client certificate"
        else {"client_cert": pki.client_cert, "client_key": pki.client_key}
    )
    adapter = tls_adapter(tls_provider, tmp_path, monkeypatch, **env)
    try:
        with pytest.raises(ProviderUnavailable) as raised:
            adapter.lookup_account(AccountIdentifier("msisdn", "+254712345601"))
    finally:
        adapter.close()
    assert isinstance(raised.value.__cause__, requests.exceptions.SSLError)  # the handshake
    if missing == "CA bundle":  # the test CA is not in the system's store
        assert "certificate verify failed" in str(raised.value.__cause__)
    assert tls_provider.client_certificates == []  # no request reached the application
