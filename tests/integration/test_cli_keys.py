"""`wallet-gateway keys init`: first keys for a deployment, never replacing existing ones."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import main
from gateway.security.tokens import SigningKeys
from gateway.vault import VaultKeys


def _snapshot(*directories: Path) -> dict[str, bytes]:
    return {
        f"{directory.name}/{path.name}": path.read_bytes()
        for directory in directories
        for path in sorted(directory.iterdir())
    }


def test_keys_init_creates_usable_private_keys_once(tmp_path: Path) -> None:
    signing, vault = tmp_path / "signing", tmp_path / "vault"
    args = ["keys", "init", "--signing-dir", str(signing), "--vault-dir", str(vault)]

    first = CliRunner().invoke(main, args, env={"GATEWAY_ENVIRONMENT": "production"})
    assert first.exit_code == 0, first.output
    assert "created signing key" in first.output and "created vault keys" in first.output
    # Usable by the services that load them without creating anything.
    assert len(SigningKeys(signing, create_if_missing=False).all()) == 1
    assert VaultKeys(vault, create_if_missing=False).active == 1
    for directory in (signing, vault):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        for path in directory.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    before = _snapshot(signing, vault)
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    assert second.output.count("kept") == 2
    assert _snapshot(signing, vault) == before


def test_keys_init_defaults_to_the_configured_directories(tmp_path: Path) -> None:
    env = {
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_SIGNING_KEYS_DIR": str(tmp_path / "configured-signing"),
        "GATEWAY_VAULT_KEYS_DIR": str(tmp_path / "configured-vault"),
    }
    result = CliRunner().invoke(main, ["keys", "init"], env=env)
    assert result.exit_code == 0, result.output
    assert any((tmp_path / "configured-signing").glob("*.pem"))
    assert (tmp_path / "configured-vault" / "index.key").exists()
    assert not (tmp_path / "data").exists()


def test_keys_init_refuses_an_incomplete_vault_directory(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "1.key").write_text("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")  # no index.key
    result = CliRunner().invoke(
        main,
        ["keys", "init", "--signing-dir", str(tmp_path / "signing"), "--vault-dir", str(vault)],
    )
    assert result.exit_code == 1
    assert "index.key" in result.output
    assert sorted(path.name for path in vault.iterdir()) == ["1.key"]
