"""Access tokens: short-lived EdDSA (Ed25519) JWTs, a key directory with rotation, and the JWKS.

The signing-key directory holds PEM private keys named by creation time; the newest signs and
all of them verify and are published in `/.well-known/jwks.json`. `wallet-gateway keys
rotate-signing` adds a key; old keys are pruned once no token they signed can still be valid.
A token whose `kid` is unknown triggers a (throttled) reload, so other processes pick up a
rotation without a restart.

Verified tokens are remembered (bounded LRU, keyed by the whole token string): a token's
signature, issuer and audience cannot change, so they are checked once. Its lifetime and whether
its signing key is still known are checked on every request.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
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

ALGORITHM = "EdDSA"


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


class SigningKeys:
    """The key directory, loaded once and reloaded when an unknown kid shows up."""

    RELOAD_INTERVAL_SECONDS = 5.0

    def __init__(self, directory: Path, *, create_if_missing: bool) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._last_load = 0.0
        if create_if_missing and not any(directory.glob("*.pem")):
            self.add_key()
        self._keys = self._load()

    def _load(self) -> list[SigningKey]:
        keys = []
        for path in sorted(self.directory.glob("*.pem")):
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise ValueError(f"{path.name} is not an Ed25519 private key")
            keys.append(SigningKey(_thumbprint(private.public_key()), private, path.stem))
        if not keys:
            raise FileNotFoundError(
                f"no signing keys in {self.directory}; run `wallet-gateway keys rotate-signing`"
            )
        self._last_load = time.monotonic()
        return keys

    def add_key(self) -> SigningKey:
        """Generate a new key; it signs from now on (after other processes reload)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = Ed25519PrivateKey.generate()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.directory / f"{stamp}.pem"
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
        with self._lock:
            self._keys = self._load() if hasattr(self, "_keys") else []
        return SigningKey(_thumbprint(private.public_key()), private, stamp)

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest `keep` keys; returns the removed kids."""
        paths = sorted(self.directory.glob("*.pem"))
        removed = []
        for path in paths[: max(0, len(paths) - max(keep, 1))]:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            removed.append(_thumbprint(private.public_key()))  # type: ignore[arg-type]
            path.unlink()
        with self._lock:
            self._keys = self._load()
        return removed

    @property
    def active(self) -> SigningKey:
        return self._keys[-1]

    def all(self) -> list[SigningKey]:
        return list(self._keys)

    def find(self, kid: str) -> SigningKey | None:
        for key in self._keys:
            if key.kid == kid:
                return key
        with self._lock:
            if time.monotonic() - self._last_load > self.RELOAD_INTERVAL_SECONDS:
                self._keys = self._load()
        return next((key for key in self._keys if key.kid == kid), None)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk for key in self._keys]}


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
