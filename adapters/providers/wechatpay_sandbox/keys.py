"""The sandbox's own cryptography, written from WeChat Pay's API v3 documentation (it shares
nothing with the gateway's adapter): its platform key, checking the merchant's request
signatures, signing its answers and notifications, sealing notification resources and opening
sensitive fields."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def load_or_create(path: Path) -> rsa.RSAPrivateKey:
    """The RSA key in `path`, created first (atomically) when there is none."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(65537, 2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        temporary = path.with_name(f".{path.name}.{os.getpid()}.sandbox.tmp")
        temporary.write_bytes(pem)
        temporary.chmod(0o600)
        try:
            os.link(temporary, path)  # another process may have been first: keep theirs
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: not an RSA private key")
    return loaded


def public_pem(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def publish(directory: Path, key_id: str, key: rsa.RSAPublicKey) -> Path:
    """Write the public key as `<key_id>.pem` where the gateway reads WeChat Pay's keys."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{key_id}.pem"
    data = public_pem(key)
    if not target.exists() or target.read_bytes() != data:
        temporary = directory / f".{key_id}.{os.getpid()}.tmp"
        temporary.write_bytes(data)
        temporary.replace(target)
    return target


def sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def verifies(key: rsa.RSAPublicKey, signature: str, message: bytes) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def parse_authorization(header: str) -> dict[str, str] | None:
    """`WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",…` -> its fields (None if malformed)."""
    scheme, _sep, rest = header.strip().partition(" ")
    if scheme != "WECHATPAY2-SHA256-RSA2048":
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or not (value.startswith('"') and value.endswith('"')) or len(value) < 2:
            return None
        fields[name.strip()] = value[1:-1]
    required = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}
    return fields if required <= fields.keys() else None


def seal(apiv3_key: bytes, plaintext: bytes, associated_data: str) -> dict[str, str]:
    """An `encrypt-resource` (AEAD_AES_256_GCM with the APIv3 key)."""
    nonce = secrets.token_urlsafe(9)[:12]
    sealed = AESGCM(apiv3_key).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def open_sensitive(key: rsa.RSAPrivateKey, value: str) -> str | None:
    """A field the merchant encrypted to our platform key (RSA-OAEP, SHA-1)."""
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303 - WeChat Pay's scheme
    try:
        return key.decrypt(base64.b64decode(value, validate=True), oaep).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
