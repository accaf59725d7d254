"""AES-256-GCM envelope for sensitive values (account numbers, webhook secrets).

Each value is a row of `vault_entries`; its ciphertext is bound to the row id as associated
data, so a ciphertext copied onto another row does not decrypt. Keys are versioned files in a
directory (`<version>.key`, base64 of 32 random bytes): the highest version encrypts, every
version decrypts, and `wallet-gateway keys rotate` adds a version and re-encrypts old rows in
batches while traffic continues. A separate `index.key` keys the HMAC blind index, so an
account can be found by equality without decrypting anything. A KMS can replace `VaultKeys`
later: the Vault only needs `active`, `get(version)` and `index_key`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.domain.clock import Clock
from gateway.domain.ids import new_id
from gateway.store.db import Database
from gateway.store.tables import VaultEntry

_NONCE_BYTES = 12


class VaultError(Exception):
    """A ciphertext that does not decrypt (tampered, wrong record, unknown key version)."""


class VaultKeys:
    """Versioned data keys and the blind-index key, read from a directory."""

    def __init__(
        self, directory: Path, *, create_if_missing: bool, reload_interval: float = 30.0
    ) -> None:
        self.directory = directory
        # How soon this process notices a key added by `keys rotate` elsewhere.
        self.reload_interval = reload_interval
        self._lock = threading.Lock()
        if create_if_missing and not any(directory.glob("*.key")):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._write(directory / "1.key")
            self._write(directory / "index.key")
        self._load()

    @staticmethod
    def _write(path: Path) -> None:
        path.touch(mode=0o600)
        path.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")

    @staticmethod
    def _read(path: Path) -> bytes:
        key = base64.b64decode(path.read_text().strip(), validate=True)
        if len(key) != 32:
            raise ValueError(f"{path.name} must hold 32 bytes (base64), found {len(key)}")
        return key

    def _load(self) -> None:
        keys = {}
        for path in self.directory.glob("*.key"):
            if path.stem.isdigit():
                keys[int(path.stem)] = self._read(path)
        index = self.directory / "index.key"
        if not keys or not index.exists():
            raise FileNotFoundError(
                f"vault keys missing in {self.directory} (need <version>.key files and index.key)"
            )
        with self._lock:
            self._keys = keys
            self.index_key = self._read(index)
            self._loaded_at = time.monotonic()

    def reload_if_stale(self) -> None:
        if time.monotonic() - self._loaded_at > self.reload_interval:
            self._load()

    @property
    def active(self) -> int:
        self.reload_if_stale()
        return max(self._keys)

    def get(self, version: int) -> bytes:
        key = self._keys.get(version)
        if key is None:
            self._load()  # another process may have added it
            key = self._keys.get(version)
        if key is None:
            raise VaultError(f"unknown vault key version {version}")
        return key

    def add_version(self) -> int:
        """Create the next key version; it encrypts from now on."""
        version = max(self._keys) + 1
        self._write(self.directory / f"{version}.key")
        self._load()
        return version


class Vault:
    def __init__(self, keys: VaultKeys, clock: Clock) -> None:
        self.keys = keys
        self.clock = clock

    # --- pure crypto ---------------------------------------------------------------------------

    def seal(self, entry_id: str, plaintext: str, version: int | None = None) -> tuple[int, str]:
        version = version or self.keys.active
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.keys.get(version)).encrypt(
            nonce, plaintext.encode(), entry_id.encode()
        )
        return version, base64.b64encode(nonce + sealed).decode()

    def open(self, entry_id: str, version: int, ciphertext: str) -> str:
        try:
            raw = base64.b64decode(ciphertext, validate=True)
            plain = AESGCM(self.keys.get(version)).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], entry_id.encode()
            )
        except (InvalidTag, ValueError) as exc:
            raise VaultError(f"vault entry {entry_id} does not decrypt") from exc
        return plain.decode()

    def blind_index(self, purpose: str, value: str) -> str:
        """Keyed HMAC of a normalized value, separated by purpose."""
        message = f"{purpose}\x00{value}".encode()
        return hmac.new(self.keys.index_key, message, hashlib.sha256).hexdigest()

    # --- entries -------------------------------------------------------------------------------

    def store(
        self, session: Session, *, purpose: str, plaintext: str, indexed: bool = False
    ) -> str:
        """Encrypt a value into a new entry in the caller's transaction; returns its id."""
        entry_id = new_id("vlt")
        version, ciphertext = self.seal(entry_id, plaintext)
        session.add(
            VaultEntry(
                id=entry_id,
                purpose=purpose,
                key_version=version,
                ciphertext=ciphertext,
                blind_index=self.blind_index(purpose, plaintext) if indexed else None,
                created_at=self.clock.now(),
            )
        )
        return entry_id

    def reveal(self, session: Session, entry_id: str) -> str:
        entry = session.get(VaultEntry, entry_id)
        if entry is None:
            raise VaultError(f"vault entry {entry_id} does not exist")
        return self.open(entry.id, entry.key_version, entry.ciphertext)

    def find(self, session: Session, *, purpose: str, plaintext: str) -> list[str]:
        """Ids of indexed entries holding exactly this value (no decryption)."""
        digest = self.blind_index(purpose, plaintext)
        return list(
            session.scalars(
                select(VaultEntry.id).where(
                    VaultEntry.purpose == purpose, VaultEntry.blind_index == digest
                )
            )
        )

    # --- rotation ------------------------------------------------------------------------------

    def count_below(self, db: Database, version: int) -> int:
        with db.read() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(VaultEntry)
                    .where(VaultEntry.key_version < version)
                )
                or 0
            )

    def reencrypt_batch(
        self, db: Database, version: int, batch_size: int = 500, after_id: str = ""
    ) -> tuple[list[str], list[str]]:
        """Re-encrypt up to `batch_size` entries older than `version`, in id order after
        `after_id`; returns (ids seen, ids that did not decrypt).

        Each batch is its own short transaction, so rotation can run under live traffic and
        resume from wherever it stopped. An entry that does not decrypt (tampered) is left as
        it is and reported, rather than stopping the rotation.
        """
        failed: list[str] = []
        with db.transaction() as session:
            query = (
                select(VaultEntry)
                .where(VaultEntry.key_version < version, VaultEntry.id > after_id)
                .order_by(VaultEntry.id)
                .limit(batch_size)
            )
            if db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            entries = session.scalars(query).all()
            for entry in entries:
                try:
                    plaintext = self.open(entry.id, entry.key_version, entry.ciphertext)
                except VaultError:
                    failed.append(entry.id)
                    continue
                entry.key_version, entry.ciphertext = self.seal(entry.id, plaintext, version)
            return [entry.id for entry in entries], failed

    def reencrypt_all(
        self,
        db: Database,
        version: int,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[int, list[str]]:
        """Re-encrypt every older entry; returns (how many moved, ids that did not decrypt)."""
        moved, after = 0, ""
        failed: list[str] = []
        while True:
            seen, bad = self.reencrypt_batch(db, version, batch_size, after)
            if not seen:
                return moved, failed
            moved += len(seen) - len(bad)
            failed += bad
            after = seen[-1]
            if progress is not None:
                progress(len(seen))
