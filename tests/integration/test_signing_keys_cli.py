"""`wallet-gateway keys rotate-signing` / `prune-signing` run as another process would: running
token services and the HTTP app pick the change up without a restart (docs/operations.md)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.domain.clock import FrozenClock
from gateway.domain.errors import AuthenticationFailed
from gateway.security.tokens import SigningKeys, TokenService

_KID = re.compile(r"signing key (\S+?);?(?:\s|$)")


def _cli(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _issue(tokens: TokenService) -> str:
    return tokens.issue(
        partner_id="ptn_cli", kind="wallet", scopes=["partner:read"], version=1
    ).access_token


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_rotate_then_prune_from_the_cli(tmp_path: Path) -> None:
    env = {
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_SIGNING_KEYS_DIR": str(tmp_path / "signing"),
    }
    created = _cli(env, "keys", "rotate-signing")
    assert created.startswith("created signing key ")
    first_kid = _KID.findall(created)[0]

    running = SigningKeys(tmp_path / "signing", create_if_missing=False, reload_seconds=0)
    tokens = TokenService(
        running,
        issuer="https://gw.test",
        audience="wallet-gateway",
        ttl_seconds=900,
        clock=FrozenClock(),
    )
    old_token = _issue(tokens)
    assert _kid(old_token) == first_kid
    tokens.verify(old_token)

    added = _cli(env, "keys", "rotate-signing")
    assert "processes pick it up within seconds" in added
    second_kid = _KID.findall(added)[0]
    assert second_kid != first_kid
    assert running.active.kid == second_kid
    assert {key["kid"] for key in running.jwks()["keys"]} == {first_kid, second_kid}
    new_token = _issue(tokens)
    assert _kid(new_token) == second_kid

    assert _cli(env, "keys", "prune-signing", "--keep", "2") == ""  # nothing beyond two
    pruned = _cli(env, "keys", "prune-signing", "--keep", "1")
    assert pruned == f"removed signing key {first_kid}\n"
    assert len(list((tmp_path / "signing").glob("*.pem"))) == 1
    with pytest.raises(AuthenticationFailed):
        tokens.verify(old_token)  # cached as verified, refused now its key is gone
    assert tokens.verify(new_token)["sub"] == "ptn_cli"


def test_prune_signing_without_keys_fails_clearly(tmp_path: Path) -> None:
    env = {"GATEWAY_ENVIRONMENT": "test", "GATEWAY_SIGNING_KEYS_DIR": str(tmp_path / "none")}
    result = CliRunner().invoke(main, ["keys", "prune-signing", "--keep", "1"], env=env)
    assert result.exit_code == 1
    assert "no signing keys in" in result.output
    assert "wallet-gateway keys rotate-signing" in result.output


def test_the_running_app_signs_with_a_key_rotated_from_the_cli(  # type: ignore[no-untyped-def]
    client, settings, make_partner
) -> None:
    env = {
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_DATABASE_URL": settings.resolved_database_url,
    }
    if settings.signing_keys_dir is not None:
        env["GATEWAY_SIGNING_KEYS_DIR"] = str(settings.signing_keys_dir)
    partner = make_partner()
    new_kid = _KID.findall(_cli(env, "keys", "rotate-signing"))[0]

    deadline = time.monotonic() + 15  # the app re-reads the directory every few seconds
    kids: set[str] = set()
    while new_kid not in kids and time.monotonic() < deadline:
        kids = {key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]}
        if new_kid not in kids:
            time.sleep(0.25)
    assert new_kid in kids
    assert _kid(partner.token) in kids  # the previous key still verifies

    issued = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(partner.id, partner.secret),
    )
    assert issued.status_code == 200
    assert _kid(issued.json()["access_token"]) == new_kid
    assert client.get("/v1/partners/me", headers=partner.auth).status_code == 200
