"""RSA key material for providers that sign with SHA256withRSA (WeChat Pay, Alipay).

* `load_private_key` / `ensure_private_key`: the bank's own signing key (PKCS#8 or PKCS#1 PEM);
  `ensure_` creates one for the embedded sandboxes only (development), atomically, so several
  processes starting at once end up with the same key.
* `load_public_key`: a provider key from PEM (`CERTIFICATE`, `PUBLIC KEY`, `RSA PUBLIC KEY`) or
  the bare base64 the Alipay console hands out.
* `KeyRing`: the provider's verification keys by id (a WeChat Pay platform certificate serial or
  `PUB_KEY_ID_…`, or the file name), loaded from files and from a directory that is read again
  when an unknown id shows up and the directory changed (or, failing that, at most every
  `reload_seconds`): rotating a key is dropping a file next to the old one, without a restart.
  A provider whose files are not `*.pem` keys (Alipay's `*.crt` certificates, known by their
  certificate SN) passes its own `pattern` and `loader`.

Errors name the file, never its content.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_BITS = 2048


class KeyFileError(ValueError):
    """A key file is missing, unreadable or not an RSA key of the expected kind."""


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the private key ({exc.strerror or exc})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{path}: not an RSA private key")
    if key.key_size < KEY_BITS:
        raise KeyFileError(f"{path}: the RSA key has {key.key_size} bits, at least 2048 are needed")
    return key


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_once(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create `path` with `data` unless it exists (atomic: a reader never sees half a file);
    returns whether this call created it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        try:
            os.link(temporary, path)  # fails if another process created it first
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def ensure_private_key(path: Path) -> rsa.RSAPrivateKey:
    """The key in `path`, created first if there is none (development sandboxes only)."""
    if not path.exists():
        write_once(path, private_pem(rsa.generate_private_key(65537, KEY_BITS)))
    return load_private_key(path)


@dataclass(frozen=True)
class PublicKey:
    """A verification key; `serial` and validity are set when it came as a certificate."""

    key: rsa.RSAPublicKey
    serial: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None

    def valid_at(self, moment: datetime) -> bool:
        if self.not_before is not None and moment < self.not_before:
            return False
        return not (self.not_after is not None and moment > self.not_after)


def load_public_key(data: bytes, *, source: str) -> PublicKey:
    """A public key or certificate (PEM, or bare base64 DER of a SubjectPublicKeyInfo)."""
    text = data.strip()
    try:
        if b"-----BEGIN CERTIFICATE-----" in text:
            certificate = x509.load_pem_x509_certificate(text)
            key = certificate.public_key()
            serial = format(certificate.serial_number, "X")
            if not isinstance(key, rsa.RSAPublicKey):
                raise KeyFileError(f"{source}: the certificate's key is not RSA")
            return PublicKey(
                key, serial, certificate.not_valid_before_utc, certificate.not_valid_after_utc
            )
        if b"-----BEGIN" in text:
            loaded = serialization.load_pem_public_key(text)
        else:
            loaded = serialization.load_der_public_key(base64.b64decode(b"".join(text.split())))
    except (ValueError, TypeError, binascii.Error):
        raise KeyFileError(f"{source}: not a PEM certificate or public key") from None
    if not isinstance(loaded, rsa.RSAPublicKey):
        raise KeyFileError(f"{source}: not an RSA public key")
    return PublicKey(loaded)


def load_public_key_file(path: Path) -> PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key ({exc.strerror or exc})") from None
    return load_public_key(data, source=str(path))


class KeyRing:
    """Verification keys by id, from fixed files and an optional directory of `*.pem` files.

    A file in the directory is known by its certificate serial (certificates) or its name
    without `.pem` (public keys, e.g. `PUB_KEY_ID_0114232134912410000000000000.pem`).
    """

    def __init__(
        self,
        keys: dict[str, PublicKey] | None = None,
        *,
        directory: Path | None = None,
        reload_seconds: float = 5.0,
        pattern: str = "*.pem",
        loader: Callable[[Path], tuple[str, PublicKey]] | None = None,
    ) -> None:
        """`pattern` / `loader`: which files of `directory` hold keys and how a file becomes
        its (id, key) entry (default: `*.pem`, known by certificate serial or file name)."""
        self._fixed = dict(keys or {})
        self._directory = directory
        self._reload_seconds = reload_seconds
        self._pattern = pattern
        self._loader = loader
        self._lock = threading.Lock()
        self._loaded: dict[str, PublicKey] = {}
        self._loaded_at = float("-inf")
        self._stamp: int | None = None
        if directory is not None:
            self.reload()

    @classmethod
    def from_files(
        cls,
        entries: Iterable[tuple[str | None, Path]],
        *,
        directory: Path | None = None,
        reload_seconds: float = 5.0,
    ) -> KeyRing:
        """`entries`: (id or None for a certificate, file)."""
        keys: dict[str, PublicKey] = {}
        for key_id, path in entries:
            loaded = load_public_key_file(path)
            name = key_id or loaded.serial
            if name is None:
                raise KeyFileError(f"{path}: a public key needs its id (ID=path)")
            if key_id and loaded.serial and key_id.upper() != loaded.serial:
                raise KeyFileError(
                    f"{path}: the certificate's serial is {loaded.serial}, not {key_id}"
                )
            keys[name.upper() if loaded.serial else name] = loaded
        return cls(keys, directory=directory, reload_seconds=reload_seconds)

    def _directory_stamp(self) -> int | None:
        """When the directory last changed (a file added, removed or renamed into it)."""
        try:
            return self._directory.stat().st_mtime_ns if self._directory is not None else None
        except OSError:
            return None

    def reload(self) -> None:
        """Read the directory again (new files are added, removed ones dropped)."""
        stamp = self._directory_stamp()
        loaded: dict[str, PublicKey] = {}
        if self._directory is not None and self._directory.is_dir():
            for path in sorted(self._directory.glob(self._pattern)):
                if self._loader is not None:
                    key_id, entry = self._loader(path)
                    loaded[key_id] = entry
                    continue
                key = load_public_key_file(path)
                loaded[key.serial or path.stem] = key
        with self._lock:
            self._loaded = loaded
            self._loaded_at = time.monotonic()
            self._stamp = stamp

    def _reload_due(self) -> bool:
        with self._lock:
            changed = self._directory_stamp() != self._stamp
            return changed or time.monotonic() - self._loaded_at >= self._reload_seconds

    def _merged(self) -> dict[str, PublicKey]:
        with self._lock:
            return {**self._loaded, **self._fixed}

    def get(self, key_id: str) -> PublicKey | None:
        """The key with this id; an unknown id makes the directory be read again first."""
        wanted = key_id.strip()
        found = self._lookup(wanted)
        if found is None and self._directory is not None and self._reload_due():
            self.reload()
            found = self._lookup(wanted)
        return found

    def _lookup(self, key_id: str) -> PublicKey | None:
        keys = self._merged()
        return keys.get(key_id) or keys.get(key_id.upper())

    def all(self, *, refresh: bool = False) -> list[PublicKey]:
        """Every key (Alipay signatures carry no key id: each one is tried)."""
        if refresh and self._directory is not None and self._reload_due():
            self.reload()
        return list(self._merged().values())

    def ids(self) -> list[str]:
        return sorted(self._merged())

    def newest(self) -> tuple[str, PublicKey] | None:
        """The key to encrypt for (WeChat Pay sensitive fields): a public key id first, else the
        certificate that expires last."""
        keys = self._merged()
        if not keys:
            return None
        public = sorted(k for k, v in keys.items() if v.serial is None)
        if public:
            return public[-1], keys[public[-1]]
        ranked = sorted(
            keys.items(), key=lambda item: item[1].not_after or datetime.max.replace(tzinfo=UTC)
        )
        return ranked[-1]
