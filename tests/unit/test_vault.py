"""The vault's cryptography on its own (pure: no database)."""

from __future__ import annotations

import base64

import pytest

from gateway.domain.clock import SystemClock
from gateway.vault import Vault, VaultError, VaultKeys


@pytest.fixture
def vault(tmp_path) -> Vault:  # type: ignore[no-untyped-def]
    return Vault(VaultKeys(tmp_path / "keys", create_if_missing=True), SystemClock())


def test_round_trip_and_fresh_nonces(vault: Vault) -> None:
    version, first = vault.seal("vlt_a", "6222021234567890")
    _, second = vault.seal("vlt_a", "6222021234567890")
    assert first != second
    assert "6222021234567890" not in first
    assert vault.open("vlt_a", version, first) == "6222021234567890"


def test_ciphertext_is_bound_to_its_record(vault: Vault) -> None:
    version, sealed = vault.seal("vlt_a", "secret")
    with pytest.raises(VaultError):
        vault.open("vlt_b", version, sealed)


def test_tampered_ciphertext_is_rejected(vault: Vault) -> None:
    version, sealed = vault.seal("vlt_a", "secret")
    raw = bytearray(base64.b64decode(sealed))
    raw[-1] ^= 0x01
    with pytest.raises(VaultError):
        vault.open("vlt_a", version, base64.b64encode(bytes(raw)).decode())


def test_old_versions_still_decrypt_after_a_new_key(vault: Vault) -> None:
    old_version, sealed = vault.seal("vlt_a", "secret")
    new_version = vault.keys.add_version()
    assert new_version == old_version + 1
    assert vault.seal("vlt_b", "x")[0] == new_version
    assert vault.open("vlt_a", old_version, sealed) == "secret"
    with pytest.raises(VaultError):
        vault.open("vlt_a", 99, sealed)


def test_blind_index_is_keyed_deterministic_and_purpose_separated(vault: Vault, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = vault.blind_index("account_number", "6222021234567890")
    assert first == vault.blind_index("account_number", "6222021234567890")
    assert first != vault.blind_index("mobile", "6222021234567890")
    other = Vault(VaultKeys(tmp_path / "other", create_if_missing=True), SystemClock())
    assert other.blind_index("account_number", "6222021234567890") != first


def test_missing_keys_are_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError, match="vault keys missing"):
        VaultKeys(tmp_path / "none", create_if_missing=False)
