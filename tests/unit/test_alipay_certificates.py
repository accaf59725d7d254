"""Alipay certificate serial numbers (SNs) as the official SDKs compute them.

First the REAL vectors of alipay-sdk-nodejs-all (`test/antcertutil.test.ts` and its fixtures
`appCertPublicKey_2021001161683774.crt`, `alipayCertPublicKey_RSA2.crt`, copied below) and
Alipay's real root chain (contracts/providers/alipay/certificates/alipayRootCert.crt, with SM2
and ECDSA roots that `cryptography` cannot even load); then the format pinned by hand: the MD5
of a literal issuer string and a decimal serial, Java's RFC 2253 rendering rules (order,
escapes, multi-valued names, unknown attribute types), the root chain's RSA filter, and the
file checks made at start-up."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from adapters.providers.alipay import certificates
from adapters.providers.rsa_keys import KeyFileError, load_private_key
from gateway import resources
from tests.fixtures import assert_provenance

CERTS = resources.contracts_dir() / "providers" / "alipay" / "certificates"
KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "alipay" / "test-keys"
APP_KEY = load_private_key(KEYS / "app_private_key.pem")

# alipay-sdk-nodejs-all test/fixtures/appCertPublicKey_2021001161683774.crt (real, expired 2022)
SDK_APP_CERT = b"""-----BEGIN CERTIFICATE-----
MIIEsTCCA5mgAwIBAgIQICAFGGIDnUCQiXuk1RwhJjANBgkqhkiG9w0BAQsFADCBgjELMAkGA1UE
BhMCQ04xFjAUBgNVBAoMDUFudCBGaW5hbmNpYWwxIDAeBgNVBAsMF0NlcnRpZmljYXRpb24gQXV0
aG9yaXR5MTkwNwYDVQQDDDBBbnQgRmluYW5jaWFsIENlcnRpZmljYXRpb24gQXV0aG9yaXR5IENs
YXNzIDEgUjEwHhcNMjAwNTE4MDUyODQ3WhcNMjIwNTE4MDUyODQ3WjB5MQswCQYDVQQGEwJDTjEt
MCsGA1UECgwk5p2t5bee54SV5pet5L+h5oGv5oqA5pyv5pyJ6ZmQ5YWs5Y+4MQ8wDQYDVQQLDAZB
bGlwYXkxKjAoBgNVBAMMITIwODg4MzEyMDQ2NTkyMTctMjAyMTAwMTE2MTY4Mzc3NDCCASIwDQYJ
KoZIhvcNAQEBBQADggEPADCCAQoCggEBAJxb57A3/QC/2oDPcZrqWKPs/2qjVlY/x00s3OWa0Cnh
ftO/4tk33cuVEwaQW7b/KbeyfmZ7p8SoxJ9UBDASDACq4TGgR0hFFIIT1FCjeUe8owXyaQsjbKL/
6woXKHHOAaNCY42d9uKZ0ZAyeyX4gF+eEWVmobkDjUAYi6FdL/zyogbrKrYFibmKbTjuVocvlZN2
2R6CEJHCSnc3lw+Ya9NVe7DDx05B8MUQMPBZe9ZhvQb2D75bniV1i4clv/lezKdWyT//d/dIpGVx
4tt92bMwt//UeFG2jLTWJG6h9bv6RCp4O7NFwE4IVMsJhoFTQKEatBx5wsfbYUC3Ivuo2/MCAwEA
AaOCASkwggElMB8GA1UdIwQYMBaAFHEH4gRhFuTl8mXrMQ/J4PQ8mtWRMB0GA1UdDgQWBBSXl4+T
1U+ja4hCST3DlTQAAKQ/tTBABgNVHSAEOTA3MDUGB2CBHAFuAQEwKjAoBggrBgEFBQcCARYcaHR0
cDovL2NhLmFsaXBheS5jb20vY3BzLnBkZjAOBgNVHQ8BAf8EBAMCBsAwLwYDVR0fBCgwJjAkoCKg
IIYeaHR0cDovL2NhLmFsaXBheS5jb20vY3JsNDEuY3JsMGAGCCsGAQUFBwEBBFQwUjAoBggrBgEF
BQcwAoYcaHR0cDovL2NhLmFsaXBheS5jb20vY2E2LmNlcjAmBggrBgEFBQcwAYYaaHR0cDovL2Nh
LmFsaXBheS5jb206ODM0MC8wDQYJKoZIhvcNAQELBQADggEBALeeTrnXKUYapQ/ig9MB4h9KoP3g
27BVJwOxYaIqWxm6iDvOr/Ju+/8QKygnH6dM3+6+pShCdHsCFaSAQM4gUwxS4F1PcISjKs3LQ6Q8
eWHZMV9w292DOzFRNUoMmgI2yAGOW6DxmnNDFxbVjzcABsrjOmoqso5c4y82K7cl9AfvTm+ThOC3
wPQqTiLOZ6xoSL8pO4V+BkPrJTKJNqX0cVPm+QLP+TC411GTjrmz2nv1OPEVSTey5HaB6HWQeDz7
hGnbipZswfCRHRiu42+4pQZw+3rQ6uRzSPMpxgk7RaBWexybrqRk6ZfyXMcxJvNDWWk/EQlzLL8S
RuJzW8kcFrE=
-----END CERTIFICATE-----
"""
# alipay-sdk-nodejs-all test/fixtures/alipayCertPublicKey_RSA2.crt (real, expired 2022)
SDK_ALIPAY_CERT = b"""-----BEGIN CERTIFICATE-----
MIIDsjCCApqgAwIBAgIQICAFFOY8L+BNU4cW/iE1izANBgkqhkiG9w0BAQsFADCBgjELMAkGA1UE
BhMCQ04xFjAUBgNVBAoMDUFudCBGaW5hbmNpYWwxIDAeBgNVBAsMF0NlcnRpZmljYXRpb24gQXV0
aG9yaXR5MTkwNwYDVQQDDDBBbnQgRmluYW5jaWFsIENlcnRpZmljYXRpb24gQXV0aG9yaXR5IENs
YXNzIDIgUjEwHhcNMjAwNTE0MTQ0MjAxWhcNMjIwNTE0MTQ0MjAxWjCBkjELMAkGA1UEBhMCQ04x
LTArBgNVBAoMJOadreW3nueEleaXreS/oeaBr+aKgOacr+aciemZkOWFrOWPuDEPMA0GA1UECwwG
QWxpcGF5MUMwQQYDVQQDDDrmlK/ku5jlrp0o5Lit5Zu9Kee9kee7nOaKgOacr+aciemZkOWFrOWP
uC0yMDg4ODMxMjA0NjU5MjE3MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAhoVesfcG
vUv1XvUndmX0rmSZ/2posJBCooySbSVFpV79RtHMzrVz2aKkC3WvOXeT5iNeQK4mK8gp3vNkWrHT
kQGx5BcmkeO1WS384CQde7dAS0gmxeFs5bs+cCQqV2A2c2R9/5rJMtFtp1Ot/rIiMBUn6Ei0Uozt
M7AneavqQEzSwYlCKNhPFFtHCiz7u4O5R9CIyvUmYr+zpem2HXBN9ygPAZ0aXBQipGbc45+G07ZC
NsmY4hV/Igya1aBf+Ye8p10Ew8uBBri0sIknhSC2LqKKy2IH1fO6q1d1jhN240QRHvbpRNv60kAf
ZsEulBASBrCMBi49NiJyr5nre7SNywIDAQABoxIwEDAOBgNVHQ8BAf8EBAMCA/gwDQYJKoZIhvcN
AQELBQADggEBAEx9T99X9NhDZYXDftc0wH0Tc5OVRIqWTYBN/KEP1df+Ix5djcDrUUcXJMvprMw3
frUymgJsf7YUgZ1+dMz+Gup5dCH3qUu/5c9R3d8senb4wCiYR2FpJ3WGIONwInNQTs04a2wM4JIM
CdCYWC/H1hdvNl9V4pYeMckTruSnPmJlL6E/pNF5AuIYP5AswZSOhASIQzt5Rr6QDz/YVGi2/6al
5Bknm2f9dmsZbWDapKDrlJ3Ny2B0SZ0H47Y7lRlaVNe+Jj1jsrv16ONk1XLt71jyWyPAIlITLcyX
mMtT1IympPFRxBIngEImjGt6d1VUtkf61Cjpr0bRRDoZXvWRv5U=
-----END CERTIFICATE-----
"""
SDK_APP_CERT_SN = "866efef280dec9137a87d047ac446315"
SDK_ALIPAY_CERT_SN = "7513daaaa48aa3ba2e4018d84402479c"
ALIPAY_ROOT_CERT_SN = "687b59193f3f462dd5336e5abf83c5d8_02941eef3187dddf3d3b83462e1dfcf6"
CLASS_2 = (
    "CN=Ant Financial Certification Authority Class 2 R1,OU=Certification Authority,"
    "O=Ant Financial,C=CN"
)


# --- the SDK's vectors -----------------------------------------------------------------------


def test_the_certificate_files_are_the_recorded_bytes() -> None:
    assert_provenance(CERTS)


def test_the_sdk_application_certificate_sn() -> None:
    [fields] = certificates.read_certificates(SDK_APP_CERT)
    assert fields.sn == SDK_APP_CERT_SN


def test_the_sdk_alipay_certificate_sn_and_how_it_is_made() -> None:
    [fields] = certificates.read_certificates(SDK_ALIPAY_CERT)
    assert fields.issuer == CLASS_2  # most specific first, as X500Principal.getName()
    assert fields.serial_number == 0x20200514E63C2FE04D538716FE21358B
    assert fields.sn == SDK_ALIPAY_CERT_SN
    by_hand = f"{CLASS_2}{0x20200514E63C2FE04D538716FE21358B}".encode()
    assert hashlib.md5(by_hand).hexdigest() == SDK_ALIPAY_CERT_SN


def test_alipays_real_root_chain() -> None:
    """Four roots — SM2, RSA (sha256), ECDSA, RSA (sha1) — and only the RSA ones count; the
    ECDSA root's SN (8af6…) in the value is what Alipay refuses as invalid-alipay-root-cert-sn."""
    data = (CERTS / "alipayRootCert.crt").read_bytes()
    chain = certificates.read_certificates(data)
    assert [c.signature_algorithm for c in chain] == [
        "1.2.156.10197.1.501",  # SM3withSM2
        "1.2.840.113549.1.1.11",  # sha256WithRSAEncryption
        "1.2.840.10045.4.3.3",  # ecdsa-with-SHA384
        "1.2.840.113549.1.1.5",  # sha1WithRSAEncryption
    ]
    assert chain[2].sn == "8af620707e5ddd8c7e76747e86a604dc"
    assert certificates.root_cert_sn(data) == ALIPAY_ROOT_CERT_SN
    with pytest.raises(ValueError, match="parsing"):  # why the module reads DER itself
        x509.load_pem_x509_certificates(data)


# --- the format, by hand ---------------------------------------------------------------------


def _certificate(
    issuer: x509.Name,
    serial: int,
    *,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    subject_key: rsa.RSAPublicKey | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    signer = key or rsa.generate_private_key(65537, 2048)
    public = subject_key or APP_KEY.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "subject")]))
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2031, 1, 1, tzinfo=UTC))
        .sign(signer, algorithm or hashes.SHA256())
    )


def _pem(*certs: x509.Certificate) -> bytes:
    return b"\n".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


ANT_CLASS_2 = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ant Financial"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Certification Authority"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Ant Financial Certification Authority Class 2 R1"),
    ]
)


def test_an_sn_is_the_md5_of_the_issuer_and_the_decimal_serial() -> None:
    serial = 42701552432456004857627230056898180491
    expected = hashlib.md5(
        b"CN=Ant Financial Certification Authority Class 2 R1,OU=Certification Authority,"
        b"O=Ant Financial,C=CN42701552432456004857627230056898180491"
    ).hexdigest()
    [fields] = certificates.read_certificates(_pem(_certificate(ANT_CLASS_2, serial)))
    assert fields.sn == expected
    assert certificates.sn(CLASS_2, serial) == expected
    # 32 hex digits even when the digest starts with zeros (the SDK pads BigInteger's hex)
    assert len(certificates.sn("x", 57)) == 32


def _tlv(tag: int, content: bytes) -> bytes:
    length = len(content)
    head = bytes([length]) if length < 0x80 else bytes([0x82]) + length.to_bytes(2, "big")
    return bytes([tag]) + head + content


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([arcs[0] * 40 + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _name(*relative: list[tuple[str, int, bytes]]) -> bytes:
    """A DER Name from relative names of (OID, string tag, value bytes), in encoding order."""
    return _tlv(
        0x30,
        b"".join(
            _tlv(0x31, b"".join(_tlv(0x30, _oid(o) + _tlv(t, v)) for o, t, v in rdn))
            for rdn in relative
        ),
    )


UTF8, PRINTABLE, IA5, BMP = 0x0C, 0x13, 0x16, 0x1E


def test_the_name_is_written_as_javas_x500principal_get_name() -> None:
    name = _name(
        [("2.5.4.6", PRINTABLE, b"CN")],
        [("2.5.4.10", UTF8, "蚂蚁金服".encode())],
        [("2.5.4.11", UTF8, b'a,b=c+d#e;f<g>h"i\\j')],
        [("2.5.4.3", UTF8, b"  lead and trail  "), ("0.9.2342.19200300.100.1.1", UTF8, b"u1")],
        [("1.2.840.113549.1.9.1", IA5, b"a@b.cn")],
        [("2.5.4.7", BMP, "杭州".encode("utf-16-be"))],
        [("2.5.4.8", UTF8, b"#x\x00")],
    )
    assert certificates.principal_name(name) == (
        "ST=\\#x\\00,"  # '#' escaped wherever it is, NUL as \00
        "L=杭州,"  # BMPString read as UTF-16
        "1.2.840.113549.1.9.1=#16066140622e636e,"  # no RFC 2253 keyword: #hex of the DER value
        "CN=\\ \\ lead and trail\\ \\ +UID=u1,"  # one relative name: '+', encoding order
        'OU=a\\,b\\=c\\+d\\#e\\;f\\<g\\>h\\"i\\\\j,'
        "O=蚂蚁金服,"  # not escaped
        "C=CN"
    )


def test_a_keyword_with_a_value_that_is_not_a_string_is_hex() -> None:
    name = _name([("2.5.4.3", 0x02, b"\x05")])  # an INTEGER where a string is expected
    assert certificates.principal_name(name) == "CN=#020105"


def test_the_root_chain_keeps_the_rsa_signed_certificates_in_order() -> None:
    rsa_256 = _certificate(ANT_CLASS_2, 11)
    ecdsa = _certificate(ANT_CLASS_2, 12, key=ec.generate_private_key(ec.SECP256R1()))
    rsa_512 = _certificate(ANT_CLASS_2, 13, algorithm=hashes.SHA512())
    data = _pem(ecdsa, rsa_256, ecdsa, rsa_512)
    assert certificates.root_cert_sn(data) == "_".join(
        hashlib.md5(f"{CLASS_2}{serial}".encode()).hexdigest() for serial in (11, 13)
    )
    assert certificates.root_cert_sn(_pem(ecdsa)) == ""


# --- files -----------------------------------------------------------------------------------


def test_the_application_certificate_must_certify_the_application_key(tmp_path: Path) -> None:
    good = tmp_path / "appCertPublicKey_2021000100000001.crt"
    good.write_bytes(_pem(_certificate(ANT_CLASS_2, 7)))
    assert certificates.load_app_certificate(good, APP_KEY) == certificates.sn(CLASS_2, 7)

    other = rsa.generate_private_key(65537, 2048)
    with pytest.raises(KeyFileError, match="not for the application's private key"):
        certificates.load_app_certificate(good, other)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the application certificate"),
        (b"", "no certificate"),
        (b"-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n", "no certificate"),
        (b"-----BEGIN CERTIFICATE-----\nMIIBIjAN\n-----END CERTIFICATE-----\n", "not a readable"),
        (b"-----BEGIN CERTIFICATE-----\nM!!\n-----END CERTIFICATE-----\n", "not a readable"),
    ],
)
def test_unusable_application_certificate_files(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "app.crt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(KeyFileError, match=message) as raised:
        certificates.load_app_certificate(path, APP_KEY)
    assert str(path) in str(raised.value)


def test_an_alipay_certificate_file_is_read_as_the_sdk_reads_it(tmp_path: Path) -> None:
    """Alipay's file comes with its intermediate after it: the first certificate is the one."""
    alipay_key = load_private_key(KEYS / "alipay_private_key.pem")
    leaf = _certificate(ANT_CLASS_2, 99, subject_key=alipay_key.public_key())
    intermediate = _certificate(ANT_CLASS_2, 100)
    path = tmp_path / "alipayCertPublicKey_RSA2.crt"
    path.write_bytes(_pem(leaf, intermediate))
    sn, public = certificates.load_alipay_certificate(path)
    assert sn == certificates.sn(CLASS_2, 99) == public.serial
    assert public.key.public_numbers() == alipay_key.public_key().public_numbers()


def test_a_root_chain_without_an_rsa_certificate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alipayRootCert.crt"
    path.write_bytes(
        _pem(_certificate(ANT_CLASS_2, 1, key=ec.generate_private_key(ec.SECP256R1())))
    )
    with pytest.raises(KeyFileError, match="no RSA certificate"):
        certificates.load_root_cert_sn(path)
    assert certificates.load_root_cert_sn(CERTS / "alipayRootCert.crt") == ALIPAY_ROOT_CERT_SN


def test_the_contract_certificates_have_the_recorded_sns() -> None:
    """contracts/providers/alipay/certificates/PROVENANCE.md: issuer + serial, by hand."""
    class_1 = CLASS_2.replace("Class 2", "Class 1")
    app = certificates.load_app_certificate(
        CERTS / "appCertPublicKey_2021000100000001.crt", APP_KEY
    )
    assert app == hashlib.md5(f"{class_1}{0x20260101000000000000000000000001}".encode()).hexdigest()
    assert app == "f24850ea77c80a72ac251eefa6d22b84"
    alipay, _key = certificates.load_alipay_certificate(CERTS / "alipayCertPublicKey_RSA2.crt")
    assert alipay == "80f9e813293851e2bc6c53d4cc328199"
