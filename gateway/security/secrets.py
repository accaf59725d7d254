"""Client secrets: generated with `secrets`, stored only as Argon2id hashes."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

SECRET_PREFIX = "wgs_"  # noqa: S105 - a prefix, not a secret
_hasher = PasswordHasher()  # RFC 9106 low-memory profile (Argon2id, t=3, m=64 MiB)
# Verified against when the client id is unknown, so timing does not reveal which ids exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(32))


def new_client_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored_hash: str | None, candidate: str) -> bool:
    """Constant-work check of a presented secret (a missing hash still costs one verify)."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, candidate) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False
