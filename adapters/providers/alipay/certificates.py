"""Alipay's public-key certificate mode (公钥证书模式): certificate serial numbers and the
certificate files from the Alipay console. Pure functions over bytes, plus file loaders that
raise `KeyFileError` naming the file.

In certificate mode every request carries two signed public parameters, and every answer one:

* `app_cert_sn`: the SN of the application's public-key certificate (`appCertPublicKey_<APPID>.crt`,
  issued by Alipay for the application's RSA key);
* `alipay_root_cert_sn`: the SNs of the RSA certificates of Alipay's root chain
  (`alipayRootCert.crt`, several PEM certificates in one file), joined with `_`;
* `alipay_cert_sn` (answers): the SN of the Alipay certificate whose key signed the answer
  (`alipayCertPublicKey_RSA2.crt`).

An SN is not the certificate's own serial number: it is the lowercase hex MD5 of the issuer's
distinguished name as Java's `X500Principal.getName()` renders it, followed by the serial
number in decimal. This module follows the official Java SDK, alipay-sdk-java
`AntCertificationUtil.getCertSN` / `getRootCertSN` (alipay-sdk-nodejs-all `antcertutil` does the
same for ordinary names), checked against the SDKs' published vectors by
`tests/unit/test_alipay_certificates.py`:

* the name: RFC 2253 as `X500Principal.getName()` (`sun.security.x509.AVA.toRFC2253String`)
  writes it — relative names from the last one encoded to the first ("CN=…,OU=…,O=…,C=CN"),
  several values of one relative name joined by `+`; keywords CN, C, L, ST, O, OU, STREET, DC
  and UID, any other attribute as its dotted OID with `#` and the lowercase hex of its DER value
  (also a value that is not a string); in string values each of `, = + < > # ; " \\` is escaped
  with a backslash (anywhere, not only where RFC 4514 requires it), NUL as `\\00`, and leading
  and trailing spaces (or CRs) with a backslash; other characters, Chinese included, as they are;
* the serial number: the signed DER integer in decimal (`BigInteger.toString()`);
* MD5 over the UTF-8 bytes, 32 lowercase hex digits (the SDK pads `BigInteger.toString(16)`);
* the root chain: only certificates whose signature algorithm OID starts with
  `1.2.840.113549.1.1` (PKCS #1: sha1WithRSAEncryption, sha256WithRSAEncryption, …) count, in
  file order; Alipay's SM2 and ECDSA roots are skipped (Alipay refuses a root SN that includes
  them: `isv.invalid-alipay-root-cert-sn`).

Certificates are read with asn1crypto, not `cryptography`: Alipay's root chain holds an SM2
root and an ECDSA root whose algorithm identifiers carry NULL parameters, which `cryptography`
refuses to load (Java's providers accept them). Keys are read with `cryptography` from the
application and Alipay certificates, which are ordinary RSA ones. A
file holding several certificates (Alipay's certificate file comes with its intermediate) is
read as the SDK reads it: its first certificate is the one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from asn1crypto import core, pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.providers.rsa_keys import KeyFileError, PublicKey

RSA_SIGNATURE_PREFIX = "1.2.840.113549.1.1"  # the SDK's test: getSigAlgOID().startsWith(...)
# `X500Principal.getName()`'s keywords (the RFC 2253 ones); any other type is a dotted OID.
_KEYWORDS = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
# String types written as text (`AVA.isDerString`), with the charset current JDKs decode them in.
_STRINGS = {
    0x0C: "utf-8",  # UTF8String
    0x13: "ascii",  # PrintableString
    0x14: "latin-1",  # T61String
    0x16: "ascii",  # IA5String
    0x1B: "ascii",  # GeneralString
    0x1E: "utf-16-be",  # BMPString
}
_ESCAPED = ',=+<>#;"\\'


class CertificateError(ValueError):
    """Bytes that are not a well-formed X.509 certificate (as far as an SN needs)."""


# --- the ASN.1 we read ---------------------------------------------------------------------------


class _Attribute(core.Sequence):
    """AttributeTypeAndValue with its value left as it is encoded: `X500Principal.getName()`
    writes some values as text and the rest as the hex of their DER."""

    _fields: ClassVar[list[tuple[str, type]]] = [
        ("type", core.ObjectIdentifier),
        ("value", core.Any),
    ]


class _RelativeName(core.SetOf):
    _child_spec = _Attribute


class _Name(core.SequenceOf):
    _child_spec = _RelativeName


# --- names ---------------------------------------------------------------------------------------


def _escape(value: str) -> str:
    text = "".join(
        "\\" + char if char in _ESCAPED else "\\00" if char == "\x00" else char for char in value
    )
    lead = 0
    while lead < len(text) and text[lead] in " \r":
        lead += 1
    trail = len(text) - 1
    while trail >= 0 and text[trail] in " \r":
        trail -= 1
    return "".join(
        "\\" + char if index < lead or index > trail else char for index, char in enumerate(text)
    )


def _attribute(attribute: _Attribute) -> str:
    """One AttributeTypeAndValue as `X500Principal.getName()` writes it."""
    oid = attribute["type"].dotted
    encoded = attribute["value"].dump()
    value = core.load(encoded)
    keyword = _KEYWORDS.get(oid)
    charset = _STRINGS.get(value.tag) if value.class_ == 0 else None
    if keyword is None or charset is None:
        return f"{keyword or oid}=#{encoded.hex()}"
    return f"{keyword}={_escape(value.contents.decode(charset, errors='replace'))}"


def principal_name(name_der: bytes) -> str:
    """A DER `Name` as Java's `X500Principal.getName()` (RFC 2253) renders it: relative names
    from the last encoded to the first, the values of one joined by `+` in encoding order."""
    try:
        relative = ["+".join(_attribute(a) for a in rdn) for rdn in _Name.load(name_der)]
    except ValueError as exc:
        raise CertificateError(f"not a Name ({exc})") from None
    return ",".join(reversed(relative))


# --- certificates --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateFields:
    """What an SN needs from a certificate, read from its DER."""

    der: bytes
    serial_number: int
    issuer: str  # as X500Principal.getName()
    signature_algorithm: str  # dotted OID of the certificate's signatureAlgorithm

    @property
    def sn(self) -> str:
        return sn(self.issuer, self.serial_number)

    @property
    def rsa_signed(self) -> bool:
        return self.signature_algorithm.startswith(RSA_SIGNATURE_PREFIX)


def sn(issuer: str, serial_number: int) -> str:
    """Alipay's certificate SN: MD5 of the rendered issuer followed by the decimal serial."""
    return hashlib.md5(f"{issuer}{serial_number}".encode()).hexdigest()  # noqa: S324 (Alipay's id)


def read_certificate(der: bytes) -> CertificateFields:
    """Serial number, issuer and signature algorithm of a DER certificate."""
    try:
        certificate = asn1_x509.Certificate.load(der, strict=True)
        tbs = certificate["tbs_certificate"]
        serial = tbs["serial_number"].native
        issuer = tbs["issuer"].dump()
        algorithm = certificate["signature_algorithm"]["algorithm"].dotted
    except ValueError as exc:
        raise CertificateError(str(exc).splitlines()[0]) from None
    return CertificateFields(
        der=der, serial_number=serial, issuer=principal_name(issuer), signature_algorithm=algorithm
    )


def certificates_der(data: bytes) -> list[bytes]:
    """Every certificate of a PEM file (or the one of a DER file), in file order."""
    if not pem.detect(data):
        return [data] if data[:1] == b"\x30" else []
    try:
        return [
            der for kind, _headers, der in pem.unarmor(data, multiple=True) if kind == "CERTIFICATE"
        ]
    except ValueError as exc:
        raise CertificateError(f"bad PEM ({exc})") from None


def read_certificates(data: bytes) -> list[CertificateFields]:
    return [read_certificate(der) for der in certificates_der(data)]


def _root_sn(chain: list[CertificateFields]) -> str:
    """The SNs of the chain's RSA-signed certificates, in order, joined with `_`."""
    return "_".join(cert.sn for cert in chain if cert.rsa_signed)


def root_cert_sn(data: bytes) -> str:
    """`alipay_root_cert_sn` of a root chain file: the SNs of its RSA-signed certificates,
    in file order, joined with `_` (empty when there is none)."""
    return _root_sn(read_certificates(data))


# --- files ---------------------------------------------------------------------------------------


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


def _first(path: Path, what: str) -> tuple[CertificateFields, x509.Certificate]:
    data = _read(path, what)
    try:
        found = read_certificates(data)
    except CertificateError as exc:
        raise KeyFileError(f"{path}: not a readable {what} ({exc})") from None
    if not found:
        raise KeyFileError(f"{path}: no certificate in the {what} file")
    fields = found[0]
    try:
        certificate = x509.load_der_x509_certificate(fields.der)
    except ValueError:
        raise KeyFileError(f"{path}: not a readable {what}") from None
    return fields, certificate


def load_app_certificate(path: Path, private_key: rsa.RSAPrivateKey) -> str:
    """The `app_cert_sn` of the application's certificate, checked to certify the public half
    of the application's private key (otherwise Alipay would refuse every signature)."""
    fields, certificate = _first(path, "application certificate")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFileError(f"{path}: the application certificate's key is not RSA")
    if key.public_numbers() != private_key.public_key().public_numbers():
        raise KeyFileError(
            f"{path}: the application certificate is not for the application's private key"
        )
    return fields.sn


def load_alipay_certificate(path: Path) -> tuple[str, PublicKey]:
    """An Alipay certificate (alipayCertPublicKey_RSA2.crt): its SN and its verification key
    (also `KeyRing`'s loader for a directory of Alipay certificates, known by their SN)."""
    fields, certificate = _first(path, "Alipay certificate")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFileError(f"{path}: the Alipay certificate's key is not RSA")
    return fields.sn, PublicKey(
        key, fields.sn, certificate.not_valid_before_utc, certificate.not_valid_after_utc
    )


def load_root_cert_sn(path: Path) -> str:
    """The `alipay_root_cert_sn` of Alipay's root chain file (alipayRootCert.crt)."""
    data = _read(path, "Alipay root certificate chain")
    try:
        chain = read_certificates(data)
    except CertificateError as exc:
        raise KeyFileError(f"{path}: not a readable certificate chain ({exc})") from None
    if not chain:
        raise KeyFileError(f"{path}: no certificate in the Alipay root certificate chain file")
    value = _root_sn(chain)
    if not value:
        raise KeyFileError(f"{path}: no RSA certificate in the Alipay root certificate chain")
    return value
