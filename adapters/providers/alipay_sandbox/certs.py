"""The sandbox's certificate mode (公钥证书), its own code (written from Alipay's documentation,
sharing nothing with the adapter): a throwaway PKI standing in for Alipay's, the certificate
SNs Alipay checks, and the files its console hands out.

* The root chain (`alipayRootCert.crt`): two RSA roots (sha256WithRSAEncryption) and one ECDSA
  root, like Alipay's, whose chain also mixes RSA with SM2/ECDSA roots; `alipay_root_cert_sn`
  counts only the RSA-signed ones.
* "Class 1" (issued by the first RSA root) issues application certificates
  (`appCertPublicKey_<APPID>.crt`), "Class 2" issues the Alipay certificate
  (`alipayCertPublicKey_RSA2.crt`, written with its intermediate after it, as Alipay ships it).
* An SN: the MD5 (hex) of the issuer's name written as an RFC 4514 string, most specific part
  first ("CN=…,OU=…,O=…,C=CN"), followed by the certificate's serial number in decimal — the
  rule Alipay's documentation gives (颁发者名称 + 序列号, MD5), for the plain names used here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from adapters.providers.alipay_sandbox import keys

RSA_SIGNATURES = {
    SignatureAlgorithmOID.RSA_WITH_SHA1,
    SignatureAlgorithmOID.RSA_WITH_SHA256,
    SignatureAlgorithmOID.RSA_WITH_SHA384,
    SignatureAlgorithmOID.RSA_WITH_SHA512,
}
ROOT_FILE = "alipayRootCert.crt"
ALIPAY_CERT_FILE = "alipayCertPublicKey_RSA2.crt"
VALIDITY = timedelta(days=3650)


def _name(common_name: str, unit: str = "Certification Authority") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Alipay Sandbox"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def cert_sn(certificate: x509.Certificate) -> str:
    """Alipay's SN of a certificate: MD5 of issuer name + decimal serial number."""
    text = certificate.issuer.rfc4514_string() + str(certificate.serial_number)
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 (Alipay's identifier, not security)


def root_cert_sn(roots: Sequence[x509.Certificate]) -> str:
    """`alipay_root_cert_sn`: the SNs of the RSA-signed roots, in file order, joined by `_`."""
    return "_".join(cert_sn(c) for c in roots if c.signature_algorithm_oid in RSA_SIGNATURES)


def pem(*certificates: x509.Certificate) -> bytes:
    return b"\n".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def _key_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _build(
    subject: x509.Name,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    now: datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Issuer:
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    def issue(self, subject: x509.Name, public_key: rsa.RSAPublicKey) -> x509.Certificate:
        return _build(
            subject,
            public_key,
            self.certificate.subject,
            self.key,
            ca=False,
            now=datetime.now(UTC),
        )


@dataclass
class Pki:
    """The sandbox's stand-in for Alipay's certification authority."""

    roots: list[x509.Certificate]
    class1: Issuer  # application certificates
    class2: Issuer  # Alipay certificates

    @classmethod
    def generate(cls) -> Pki:
        now = datetime.now(UTC)
        r1_key = rsa.generate_private_key(65537, 2048)
        r1_name = _name("Alipay Sandbox Root R1")
        r1 = _build(r1_name, r1_key.public_key(), r1_name, r1_key, ca=True, now=now)
        e1_key = ec.generate_private_key(ec.SECP256R1())
        e1_name = _name("Alipay Sandbox Root E1")
        e1 = _build(e1_name, e1_key.public_key(), e1_name, e1_key, ca=True, now=now)
        g2_key = rsa.generate_private_key(65537, 2048)
        g2_name = _name("Alipay Sandbox Root G2", "Trust Network")
        g2 = _build(g2_name, g2_key.public_key(), g2_name, g2_key, ca=True, now=now)
        issuers = []
        for label in ("Class 1 R1", "Class 2 R1"):
            key = rsa.generate_private_key(65537, 2048)
            certificate = _build(
                _name(f"Alipay Sandbox {label}"),
                key.public_key(),
                r1.subject,
                r1_key,
                ca=True,
                now=now,
            )
            issuers.append(Issuer(key, certificate))
        return cls([r1, e1, g2], issuers[0], issuers[1])

    # Kept as files in one directory, created whole (a rename) so concurrent starts agree.
    @classmethod
    def load_or_create(cls, directory: Path) -> Pki:
        if not (directory / ROOT_FILE).exists():
            fresh = cls.generate()
            staging = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
            staging.mkdir(parents=True, exist_ok=True)
            (staging / ROOT_FILE).write_bytes(pem(*fresh.roots))
            for name, made in (("class1", fresh.class1), ("class2", fresh.class2)):
                (staging / f"{name}.crt").write_bytes(pem(made.certificate))
                (staging / f"{name}_key.pem").write_bytes(_key_pem(made.key))
                (staging / f"{name}_key.pem").chmod(0o600)
            try:
                staging.rename(directory)
            except OSError:
                pass  # another process was first (or the directory exists): use theirs
            finally:
                with contextlib.suppress(FileNotFoundError):
                    shutil.rmtree(staging)
        roots = x509.load_pem_x509_certificates((directory / ROOT_FILE).read_bytes())

        def load(name: str) -> Issuer:
            key = serialization.load_pem_private_key(
                (directory / f"{name}_key.pem").read_bytes(), password=None
            )
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{directory}/{name}_key.pem: not an RSA key")
            return Issuer(
                key, x509.load_pem_x509_certificate((directory / f"{name}.crt").read_bytes())
            )

        return cls(roots, load("class1"), load("class2"))

    def app_certificate(self, app_id: str, key: rsa.RSAPublicKey) -> x509.Certificate:
        return self.class1.issue(_name(app_id, "Alipay Sandbox Merchant"), key)

    def alipay_certificate(self, key: rsa.RSAPublicKey) -> x509.Certificate:
        return self.class2.issue(_name("Alipay Sandbox (Alipay)", "Alipay"), key)


class Certificates:
    """What certificate mode runs on: the application's certificate (issued here or given),
    the root chain, and the Alipay certificate whose key signs answers and notifications.
    The SNs are computed once (the Alipay certificate's again when `rotate` replaces it)."""

    alipay_cert_sn: str  # set with the Alipay certificate

    def __init__(
        self, pki: Pki, app_certificate: x509.Certificate, alipay_certificate: x509.Certificate
    ) -> None:
        self.pki = pki
        self.app_certificate = app_certificate
        self.alipay_certificate = alipay_certificate

    @property
    def alipay_certificate(self) -> x509.Certificate:
        return self._alipay_certificate

    @alipay_certificate.setter
    def alipay_certificate(self, certificate: x509.Certificate) -> None:
        self._alipay_certificate = certificate
        self.alipay_cert_sn = cert_sn(certificate)

    @cached_property
    def app_cert_sn(self) -> str:
        return cert_sn(self.app_certificate)

    @cached_property
    def alipay_root_cert_sn(self) -> str:
        return root_cert_sn(self.pki.roots)

    def app_public_key(self) -> rsa.RSAPublicKey:
        key = self.app_certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("the application certificate's key is not RSA")
        return key

    @classmethod
    def issue(
        cls, pki: Pki, *, app_id: str, app_key: rsa.RSAPublicKey, alipay_key: rsa.RSAPublicKey
    ) -> Certificates:
        return cls(pki, pki.app_certificate(app_id, app_key), pki.alipay_certificate(alipay_key))

    def rotate(self, alipay_key: rsa.RSAPublicKey) -> x509.Certificate:
        """A new Alipay certificate (for a new key): answers name it from now on."""
        self.alipay_certificate = self.pki.alipay_certificate(alipay_key)
        return self.alipay_certificate

    def files(self, app_id: str) -> dict[str, bytes]:
        """The console's downloads, by file name (the Alipay certificate with its intermediate)."""
        return {
            f"appCertPublicKey_{app_id}.crt": pem(self.app_certificate),
            ROOT_FILE: pem(*self.pki.roots),
            ALIPAY_CERT_FILE: pem(self.alipay_certificate, self.pki.class2.certificate),
        }


def certifies(certificate: x509.Certificate, key: rsa.RSAPublicKey) -> bool:
    found = certificate.public_key()
    return isinstance(found, rsa.RSAPublicKey) and found.public_numbers() == key.public_numbers()


def reuse(path: Path, key: rsa.RSAPublicKey) -> x509.Certificate | None:
    """The (first) certificate in `path` if it is for `key`: a restart keeps the certificates
    it published, and an application certificate put there is accepted."""
    try:
        certificate = x509.load_pem_x509_certificates(path.read_bytes())[0]
    except (OSError, ValueError, IndexError):
        return None
    return certificate if certifies(certificate, key) else None


def write_file(path: Path, data: bytes) -> None:
    """Replace `path` atomically (a reader never sees half a certificate)."""
    keys.write_file(path, data)
