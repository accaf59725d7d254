"""The Alipay sandbox's own RSA2 code, written from Alipay's documentation (it shares nothing
with the gateway's adapter): its "Alipay" key, checking the application's request signatures,
signing answers and notifications."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def load_or_create(path: Path) -> rsa.RSAPrivateKey:
    """The RSA key in `path`, created first (atomically) when there is none."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = rsa.generate_private_key(65537, 2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        temporary = path.with_name(f".{path.name}.{os.getpid()}.alipay-sandbox.tmp")
        temporary.write_bytes(pem)
        temporary.chmod(0o600)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process was first: use theirs
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


def write_file(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically (a reader never sees half a file); nothing is
    written when it already holds them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_bytes() == data:
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def publish(directory: Path, name: str, key: rsa.RSAPublicKey) -> Path:
    target = directory / name
    write_file(target, public_pem(key))
    return target


def signed_content(params: Mapping[str, str], *skip: str) -> str:
    """Sorted `k=v&…` of the non-empty parameters, `skip`ped names left out."""
    return "&".join(
        f"{name}={params[name]}" for name in sorted(params) if name not in skip and params[name]
    )


def sign(key: rsa.RSAPrivateKey, text: str) -> str:
    return base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def verifies(key: rsa.RSAPublicKey, signature: str, text: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, text.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
