"""`wallet-gateway keys init`: first keys for a deployment, never replacing existing ones;
`keys rotate --resume`: an interrupted rotation is finished, nothing is lost."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from gateway.cli import main
from gateway.security.tokens import SigningKeys
from gateway.store.tables import VaultEntry
from gateway.vault import Vault, VaultKeys
from tests.flows import create_active_link


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


def _plaintexts(vault: Vault, container: Any) -> dict[str, tuple[int, str]]:  # type: ignore[no-untyped-def]
    """Every vault entry: (key version, decrypted value), through `vault`."""
    with container.db.read() as session:
        entries = session.scalars(select(VaultEntry).order_by(VaultEntry.id)).all()
        return {
            e.id: (e.key_version, vault.open(e.id, e.key_version, e.ciphertext)) for e in entries
        }


def test_an_interrupted_rotation_is_finished_by_resume(
    client, container, core, make_partner, settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    wallet = make_partner()
    links = [create_active_link(client, container, core, wallet) for _ in range(5)]
    keys_dir = settings.resolved_vault_keys_dir
    before = _plaintexts(container.vault, container)
    assert len(before) >= 5
    old_version = VaultKeys(keys_dir, create_if_missing=False).active
    env = {
        "GATEWAY_DATABASE_URL": settings.resolved_database_url,
        "GATEWAY_DATA_DIR": str(settings.data_dir),
    }

    # The operator presses Ctrl-C while the second batch is being re-encrypted.
    real_batch = Vault.reencrypt_batch
    calls: list[int] = []

    def interrupted(self: Vault, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_batch(self, *args, **kwargs)

    monkeypatch.setattr(Vault, "reencrypt_batch", interrupted)
    args = ["keys", "rotate", "--batch-size", "2", "--settle-seconds", "0"]
    first = CliRunner().invoke(main, args, env=env)
    monkeypatch.setattr(Vault, "reencrypt_batch", real_batch)
    assert first.exit_code != 0, first.output
    new_version = VaultKeys(keys_dir, create_if_missing=False).active
    assert new_version == old_version + 1
    left = container.vault.count_below(container.db, new_version)
    assert 0 < left <= len(before) - 2  # the first batch moved, the rest did not
    for link in links:  # traffic keeps working on a half-rotated vault
        assert client.get(f"/v1/links/{link['id']}/balance", headers=wallet.auth).status_code == 200

    resumed = CliRunner().invoke(main, ["keys", "rotate", "--resume", *args[2:]], env=env)
    assert resumed.exit_code == 0, resumed.output
    assert f"vault key version {new_version} is active" in resumed.output
    assert "0 remain under older keys" in resumed.output
    assert VaultKeys(keys_dir, create_if_missing=False).active == new_version  # no key added
    assert container.vault.count_below(container.db, new_version) == 0

    # Every entry is under the new key and still holds what it held, read with a vault that
    # knows only the key files on disk.
    fresh = Vault(VaultKeys(keys_dir, create_if_missing=False), container.clock)
    after = _plaintexts(fresh, container)
    assert {entry_id: value for entry_id, (_v, value) in after.items()} == {
        entry_id: value for entry_id, (_v, value) in before.items()
    }
    assert {version for version, _ in after.values()} == {new_version}
    for link in links:
        assert client.get(f"/v1/links/{link['id']}/balance", headers=wallet.auth).status_code == 200
