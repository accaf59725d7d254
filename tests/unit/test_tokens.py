"""Access tokens: verified tokens are remembered, but lifetime and key are checked every time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from gateway.domain.clock import FrozenClock
from gateway.domain.errors import AuthenticationFailed
from gateway.security.tokens import SigningKeys, TokenService


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def tokens(tmp_path: Path, clock: FrozenClock) -> TokenService:
    keys = SigningKeys(tmp_path / "signing", create_if_missing=True)
    return TokenService(
        keys, issuer="https://gateway.test", audience="wallet-gateway", ttl_seconds=900, clock=clock
    )


def _issue(tokens: TokenService) -> str:
    return tokens.issue(
        partner_id="ptn_test", kind="wallet", scopes=["partner:read"], version=1
    ).access_token


def _refusal(tokens: TokenService, token: str) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as caught:
        tokens.verify(token)
    return caught.value


def test_a_token_is_verified_once_then_served_from_the_cache(tokens: TokenService) -> None:
    token = _issue(tokens)
    first = tokens.verify(token)
    second = tokens.verify(token)
    assert first == second and first["sub"] == "ptn_test"
    assert tokens._verified.cache_info().hits == 1
    second["sub"] = "ptn_someone_else"  # callers get copies: the cache keeps what was verified
    assert tokens.verify(token)["sub"] == "ptn_test"


def test_a_cached_token_is_refused_once_it_expires(
    tokens: TokenService, clock: FrozenClock
) -> None:
    token = _issue(tokens)
    tokens.verify(token)
    clock.advance(seconds=900 + 5)
    assert _refusal(tokens, token).code == "token_expired"
    assert tokens._verified.cache_info().hits == 1  # it was a cache hit, and still refused


def test_a_cached_token_is_refused_before_it_is_valid(
    tokens: TokenService, clock: FrozenClock
) -> None:
    token = _issue(tokens)
    tokens.verify(token)
    clock.advance(timedelta(seconds=-60))
    assert _refusal(tokens, token).detail == "The access token is not valid yet"


def test_a_cached_token_is_refused_once_its_key_is_pruned(tokens: TokenService) -> None:
    token = _issue(tokens)
    tokens.verify(token)
    tokens.keys.add_key()
    tokens.keys.prune(keep=1)
    assert _refusal(tokens, token).detail == "The access token was not signed by this gateway"


def test_refused_tokens_are_not_remembered(tokens: TokenService) -> None:
    active = tokens.keys.active
    other_audience = jwt.encode(
        {"iss": tokens.issuer, "sub": "ptn_x", "aud": "other", "iat": 1, "exp": 2**31, "ver": 1},
        active.private_key,
        algorithm="EdDSA",
        headers={"kid": active.kid},
    )
    for token in ("not-a-jwt", other_audience, other_audience):
        assert _refusal(tokens, token).code == "invalid_token"
    assert tokens._verified.cache_info().currsize == 0
