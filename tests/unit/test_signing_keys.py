"""Signing keys shared by several processes through one directory: a rotation or a prune made
elsewhere takes effect in every running `SigningKeys` within its reload interval."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from gateway.domain.clock import FrozenClock
from gateway.domain.errors import AuthenticationFailed
from gateway.security.tokens import SigningKeys, TokenService


def _service(keys: SigningKeys) -> TokenService:
    return TokenService(
        keys,
        issuer="https://gateway.test",
        audience="wallet-gateway",
        ttl_seconds=900,
        clock=FrozenClock(),
    )


def _issue(tokens: TokenService) -> str:
    return tokens.issue(
        partner_id="ptn_test", kind="wallet", scopes=["partner:read"], version=1
    ).access_token


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "signing"
    SigningKeys(path, create_if_missing=True)  # the first key, as `keys init` makes it
    return path


def test_a_rotation_elsewhere_signs_and_is_published_here(directory: Path) -> None:
    running = SigningKeys(directory, create_if_missing=False, reload_seconds=0)
    tokens = _service(running)
    old_kid = running.active.kid
    before = _issue(tokens)

    new_kid = SigningKeys(directory, create_if_missing=False).add_key().kid  # "another process"

    assert new_kid != old_kid
    assert running.active.kid == new_kid
    assert _kid(_issue(tokens)) == new_kid
    assert [key["kid"] for key in running.jwks()["keys"]] == [old_kid, new_kid]
    assert all("d" not in key for key in running.jwks()["keys"])
    assert tokens.verify(before)["sub"] == "ptn_test"  # the old key still verifies


def test_a_prune_elsewhere_refuses_tokens_of_the_pruned_key_even_cached(directory: Path) -> None:
    running = SigningKeys(directory, create_if_missing=False, reload_seconds=0)
    tokens = _service(running)
    old_token = _issue(tokens)
    assert tokens.verify(old_token)["sub"] == "ptn_test"  # verified, so now in the cache

    operator = SigningKeys(directory, create_if_missing=False)
    new_kid = operator.add_key().kid
    new_token = _issue(tokens)
    assert operator.prune(keep=1) == [_kid(old_token)]

    with pytest.raises(AuthenticationFailed) as refused:
        tokens.verify(old_token)
    assert refused.value.detail == "The access token was not signed by this gateway"
    assert tokens.verify(new_token)["sub"] == "ptn_test"
    assert [key["kid"] for key in running.jwks()["keys"]] == [new_kid]
    assert running.find(_kid(old_token)) is None


def test_the_directory_is_checked_at_most_every_reload_interval(directory: Path) -> None:
    running = SigningKeys(directory, create_if_missing=False, reload_seconds=3.0)
    old_kid = running.active.kid
    new_kid = SigningKeys(directory, create_if_missing=False).add_key().kid

    assert running.active.kid == old_kid  # not re-read on every call
    deadline = time.monotonic() + 15
    while running.active.kid != new_kid and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running.active.kid == new_kid
    assert {key.kid for key in running.all()} == {old_kid, new_kid}


def test_an_unreadable_key_file_keeps_the_loaded_keys(directory: Path) -> None:
    running = SigningKeys(directory, create_if_missing=False, reload_seconds=0)
    tokens = _service(running)
    token = _issue(tokens)
    (directory / "99991231T235959999999Z.pem").write_text("not a key\n")

    assert len(running.all()) == 1  # still the key it had; no exception on the hot path
    assert tokens.verify(token)["sub"] == "ptn_test"

    (directory / "99991231T235959999999Z.pem").unlink()
    new_kid = SigningKeys(directory, create_if_missing=False).add_key().kid
    assert running.active.kid == new_kid  # recovers at the next check


def test_a_new_key_file_appears_whole(directory: Path) -> None:
    keys = SigningKeys(directory, create_if_missing=False)
    keys.add_key()
    names = sorted(path.name for path in directory.iterdir())
    assert len(names) == 2 and all(name.endswith(".pem") for name in names)  # no leftovers
    assert all((directory / name).stat().st_mode & 0o077 == 0 for name in names)
