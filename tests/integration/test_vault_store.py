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
    moved, failed = vault.reencrypt_all(db, version, batch_size=7)
    assert moved >= 25
    assert failed == []
    assert vault.count_below(db, version) == 0
    with db.read() as session:
        versions = set(
            session.scalars(select(VaultEntry.key_version).where(VaultEntry.id.in_(ids)))
        )
        assert versions == {version}
        assert [vault.reveal(session, i) for i in ids] == [f"acct-{n}" for n in range(25)]


def test_rotation_reports_a_tampered_entry_and_moves_the_rest(container) -> None:  # type: ignore[no-untyped-def]
    vault, db = container.vault, container.db
    with db.transaction() as session:
        good = vault.store(session, purpose="test_tamper", plaintext="fine")
        bad = vault.store(session, purpose="test_tamper", plaintext="to be damaged")
    with db.transaction() as session:
        entry = session.get(VaultEntry, bad)
        original = entry.ciphertext
        entry.ciphertext = ("A" if original[0] != "A" else "B") + original[1:]
    try:
        version = vault.keys.add_version()
        _moved, failed = vault.reencrypt_all(db, version, batch_size=3)
        assert failed == [bad]
        with db.read() as session:
            assert session.get(VaultEntry, good).key_version == version
            assert vault.reveal(session, good) == "fine"
    finally:
        with db.transaction() as session:
            session.get(VaultEntry, bad).ciphertext = original
