"""Vault entries in the database: store, reveal, find by blind index, re-encrypt in batches."""

from __future__ import annotations

from sqlalchemy import select

from gateway.store.tables import VaultEntry


def test_store_reveal_and_find(container) -> None:  # type: ignore[no-untyped-def]
    vault, db = container.vault, container.db
    with db.transaction() as session:
        entry_id = vault.store(
            session, purpose="test_account", plaintext="6222020000001111", indexed=True
        )
    with db.read() as session:
        stored = session.get(VaultEntry, entry_id)
        assert "6222020000001111" not in stored.ciphertext
        assert vault.reveal(session, entry_id) == "6222020000001111"
        assert vault.find(session, purpose="test_account", plaintext="6222020000001111") == [
            entry_id
        ]
        assert vault.find(session, purpose="test_account", plaintext="6222020000001112") == []


def test_rotation_leaves_nothing_under_old_keys(container) -> None:  # type: ignore[no-untyped-def]
    vault, db = container.vault, container.db
    with db.transaction() as session:
        ids = [
            vault.store(session, purpose="test_rotation", plaintext=f"acct-{n}") for n in range(25)
        ]
    version = vault.keys.add_version()
    assert vault.count_below(db, version) >= 25
    moved = vault.reencrypt_all(db, version, batch_size=7)
    assert moved >= 25
    assert vault.count_below(db, version) == 0
    with db.read() as session:
        versions = set(
            session.scalars(select(VaultEntry.key_version).where(VaultEntry.id.in_(ids)))
        )
        assert versions == {version}
        assert [vault.reveal(session, i) for i in ids] == [f"acct-{n}" for n in range(25)]
