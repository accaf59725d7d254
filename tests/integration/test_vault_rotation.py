"""`wallet-gateway keys rotate` under live traffic: nothing stops working, nothing stays old."""

from __future__ import annotations

import threading
import uuid

from click.testing import CliRunner

from gateway.cli import main
from tests.flows import create_active_link


def test_rotation_with_live_traffic(
    client, container, core, make_partner, settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    wallet = make_partner()
    links = [create_active_link(client, container, core, wallet) for _ in range(3)]
    old_version = container.vault.keys.active
    monkeypatch.setattr(container.vault.keys, "reload_interval", 0.2)
    stop = threading.Event()
    failures: list[str] = []

    def traffic() -> None:
        while not stop.is_set():
            for link in links:  # decrypt under whichever key the entry has right now
                response = client.get(f"/v1/links/{link['id']}/balance", headers=wallet.auth)
                if response.status_code != 200:
                    failures.append(response.text)
            body = {
                "account_number": core.open_account(),
                "holder_name": "WANG Wei",
                "currency": "CNY",
                "wallet_account_reference": "w",
                "consent": {"scopes": ["debit"]},
            }
            created = client.post(
                "/v1/links",
                json=body,
                headers={**wallet.auth, "Idempotency-Key": str(uuid.uuid4())},
            )
            if created.status_code != 201:
                failures.append(created.text)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        env = {
            "GATEWAY_DATABASE_URL": settings.resolved_database_url,
            "GATEWAY_DATA_DIR": str(settings.data_dir),
        }
        result = CliRunner().invoke(
            main, ["keys", "rotate", "--batch-size", "2", "--settle-seconds", "1"], env=env
        )
    finally:
        stop.set()
        worker.join()
    assert result.exit_code == 0, result.output
    assert "0 remain under older keys" in result.output
    new_version = container.vault.keys.active
    assert new_version == old_version + 1
    assert failures == []
    assert container.vault.count_below(container.db, new_version) == 0
    for link in links:
        assert client.get(f"/v1/links/{link['id']}/balance", headers=wallet.auth).status_code == 200


def test_tampered_ciphertext_is_refused(client, container, core, make_partner) -> None:  # type: ignore[no-untyped-def]
    from gateway.store.tables import Link, VaultEntry

    wallet = make_partner()
    link = create_active_link(client, container, core, wallet)
    with container.db.transaction() as session:
        entry = session.get(VaultEntry, session.get(Link, link["id"]).account_entry_id)
        original = entry.ciphertext
        raw = bytearray(original.encode())
        raw[20] = ord("A") if raw[20] != ord("A") else ord("B")
        entry.ciphertext = raw.decode()
    try:
        response = client.get(f"/v1/links/{link['id']}/balance", headers=wallet.auth)
        assert response.status_code == 500
        assert "vlt_" not in response.text
    finally:
        with container.db.transaction() as session:
            session.get(VaultEntry, entry.id).ciphertext = original
