"""Access tokens: short-lived EdDSA (Ed25519) JWTs, a key directory with rotation, and the JWKS.

The signing-key directory holds PEM private keys named by creation time; the newest signs and
all of them verify and are published in `/.well-known/jwks.json`. `wallet-gateway keys
rotate-signing` adds a key; old keys are pruned once no token they signed can still be valid.
Every process checks the directory's listing at most every `RELOAD_INTERVAL_SECONDS` and
re-reads it when it changed, so a rotation or a prune made by another process takes effect
within seconds without a restart: a new key signs, a pruned key no longer verifies.

Verified tokens are remembered (bounded LRU, keyed by the whole token string): a token's
signature, issuer and audience cannot change, so they are checked once. Its lifetime and whether
its signing key is still known are checked on every request.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from gateway.domain.clock import Clock
from gateway.domain.errors import AuthenticationFailed
from gateway.observability.logging import get_logger

ALGORITHM = "EdDSA"

log = get_logger("gateway.security.tokens")


def _thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint, used as the `kid`."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return (
        base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    )


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey
    created: str

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


# What a directory listing is compared by: (name, size, mtime_ns) of every *.pem file.
_Listing = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class _Loaded:
    """One consistent view of the directory, swapped as a whole (readers take no lock)."""

    keys: tuple[SigningKey, ...]
    by_kid: dict[str, SigningKey]
    listing: _Listing


class SigningKeys:
    """The key directory, re-read when its listing changes (checked at most every few seconds).

    Other processes (`keys rotate-signing`, `keys prune-signing`, other replicas) change the
    directory; every read (`active`, `find`, `jwks`) first makes a throttled check of its
    listing: one `scandir` of a handful of files every `reload_seconds`, nothing in between.
    """

    RELOAD_INTERVAL_SECONDS = 2.0

    def __init__(
        self,
        directory: Path,
        *,
        create_if_missing: bool,
        reload_seconds: float = RELOAD_INTERVAL_SECONDS,
    ) -> None:
        self.directory = directory
        self.reload_seconds = reload_seconds
        self._lock = threading.Lock()
        if create_if_missing and not self._listing():
            self._write_key()
        self._state = self._load(self._listing())
        self._next_check = time.monotonic() + reload_seconds

    def _listing(self) -> _Listing:
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return ()
        listing = []
        for entry in entries:
            if entry.name.endswith(".pem") and not entry.name.startswith("."):
                try:
                    stat = entry.stat()
                except FileNotFoundError:  # pruned while we looked
                    continue
                listing.append((entry.name, stat.st_size, stat.st_mtime_ns))
        return tuple(sorted(listing))

    def _load(self, listing: _Listing) -> _Loaded:
        keys = []
        for name, _size, _mtime in listing:
            path = self.directory / name
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise ValueError(f"{path.name} is not an Ed25519 private key")
            keys.append(SigningKey(_thumbprint(private.public_key()), private, path.stem))
        if not keys:
            raise FileNotFoundError(
                f"no signing keys in {self.directory}; run `wallet-gateway keys rotate-signing`"
            )
        return _Loaded(tuple(keys), {key.kid: key for key in keys}, listing)

    def _current(self) -> _Loaded:
        """The loaded keys, after re-reading the directory if it changed (throttled)."""
        if time.monotonic() < self._next_check:
            return self._state
        if not self._lock.acquire(blocking=False):  # another thread is checking right now
            return self._state
        try:
            self._next_check = time.monotonic() + self.reload_seconds
            self._reload()
        finally:
            self._lock.release()
        return self._state

    def _reload(self) -> None:
        """Re-read the directory if its listing changed; keep the loaded keys if it cannot be
        read (e.g. emptied by mistake), and try again at the next check."""
        listing = self._listing()
        if listing == self._state.listing:
            return
        try:
            state = self._load(listing)
        except (OSError, ValueError) as exc:
            log.warning("signing_keys_reload_failed", directory=str(self.directory), error=str(exc))
            return
        changed = {key.kid for key in state.keys} ^ set(self._state.by_kid)
        self._state = state
        if changed:
            log.info(
                "signing_keys_reloaded",
                active_kid=state.keys[-1].kid,
                kids=[key.kid for key in state.keys],
            )

    def _write_key(self) -> SigningKey:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = Ed25519PrivateKey.generate()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Written under a name readers skip, then renamed: another process never loads a
        # half-written key.
        partial = self.directory / f".{stamp}.pem.partial"
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        os.replace(partial, self.directory / f"{stamp}.pem")
        return SigningKey(_thumbprint(private.public_key()), private, stamp)

    def add_key(self) -> SigningKey:
        """Generate a new key; it signs from now on (in other processes after their next
        check of the directory)."""
        key = self._write_key()
        with self._lock:
            self._state = self._load(self._listing())
        return key

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest `keep` keys; returns the removed kids."""
        with self._lock:
            state = self._load(self._listing())
            removed = []
            for key in state.keys[: max(0, len(state.keys) - max(keep, 1))]:
                (self.directory / f"{key.created}.pem").unlink()
                removed.append(key.kid)
            self._state = self._load(self._listing())
        return removed

    @property
    def active(self) -> SigningKey:
        """The newest key: the one that signs."""
        return self._current().keys[-1]

    def all(self) -> list[SigningKey]:
        return list(self._current().keys)

    def find(self, kid: str) -> SigningKey | None:
        """The key with this kid, if the directory (as last checked) still holds it."""
        return self._current().by_kid.get(kid)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk for key in self._current().keys]}


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str


class TokenService:
    """Issues and verifies access tokens for partners."""

    # Verified tokens remembered per process; a few MB at most (tokens are < 1 KB).
    VERIFIED_CACHE_SIZE = 4096

    def __init__(
        self, keys: SigningKeys, *, issuer: str, audience: str, ttl_seconds: int, clock: Clock
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        # Only successful verifications are stored (lru_cache does not keep exceptions).
        self._verified = functools.lru_cache(maxsize=self.VERIFIED_CACHE_SIZE)(
            self._verify_signature
        )

    def issue(self, *, partner_id: str, kind: str, scopes: list[str], version: int) -> IssuedToken:
        now = int(self.clock.now().timestamp())
        key = self.keys.active
        scope = " ".join(sorted(scopes))
        claims = {
            "iss": self.issuer,
            "sub": partner_id,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_seconds,
            "jti": secrets.token_urlsafe(16),
            "scope": scope,
            "kind": kind,
            "ver": version,
        }
        token = jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})
        return IssuedToken(token, self.ttl_seconds, scope)

    def verify(self, token: str) -> dict[str, Any]:
        """Check signature, issuer, audience and lifetime; CPU only (runs on the event loop).

        Signature, issuer and audience come from the cache of verified tokens when the token was
        seen before; the key must still be known and the lifetime is checked against the
        injected clock (with 5 s leeway, not PyJWT's own) on every call.
        """
        kid, cached = self._verified(token)
        if self.keys.find(kid) is None:  # the key was pruned since the token was verified
            raise _invalid("The access token was not signed by this gateway")
        now = self.clock.now().timestamp()
        if cached["exp"] + _LEEWAY_SECONDS <= now:
            raise _invalid("The access token has expired", code="token_expired")
        if cached.get("nbf", cached["iat"]) - _LEEWAY_SECONDS > now:
            raise _invalid("The access token is not valid yet")
        return dict(cached)  # callers get their own copy; the cached claims stay as verified

    def _verify_signature(self, token: str) -> tuple[str, dict[str, Any]]:
        """The token's kid and claims if this gateway signed it for this audience; else raise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("The access token is malformed") from None
        kid = str(header.get("kid", ""))
        key = self.keys.find(kid)
        if key is None or header.get("alg") != ALGORITHM:
            raise _invalid("The access token was not signed by this gateway")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": ["exp", "iat", "sub", "aud", "iss", "ver"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            raise _invalid("The access token is not valid") from None
        return kid, claims


_LEEWAY_SECONDS = 5


def _invalid(detail: str, code: str = "invalid_token") -> AuthenticationFailed:
    challenge = f'Bearer error="invalid_token", error_description="{detail}"'
    return AuthenticationFailed(detail, code=code, headers={"WWW-Authenticate": challenge})
