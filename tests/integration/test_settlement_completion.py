"""`settlement.completed` per partner: two partners settle the same date, each hears only of
its own settlement, with its own net position."""

from __future__ import annotations

from typing import Any

from tests.flows import Setup, post_transfer

XML = {"Content-Type": "application/xml"}
FIGURES = ("debits", "credits", "refunds", "fees", "reversals", "net")


def _transfers(client, setup: Setup, *moves: tuple[str, str]) -> list[str]:  # type: ignore[no-untyped-def]
    ids = []
    for direction, value in moves:
        created = post_transfer(client, setup, value, direction=direction)
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "succeeded"
        ids.append(str(created.json()["id"]))
    return ids


def _completed_events(client, partner) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    response = client.get("/v1/events?type=settlement.completed", headers=partner.auth)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_each_partner_gets_only_its_own_settlement_completed(  # type: ignore[no-untyped-def]
    client, container, core_simulator, make_partner, funded
) -> None:
    first, second = funded(), funded()
    _transfers(client, first, ("debit", "100.00"), ("credit", "30.00"), ("debit", "12.50"))
    _transfers(client, second, ("debit", "55.00"))
    today = container.clock.now().date()
    core = make_partner(kind="core")

    # The day's statement of each settlement account (the simulator's own camt.053).
    for setup in (first, second):
        data = core_simulator.camt053(setup.settlement, today)
        stated = client.post("/core/v1/iso20022", content=data, headers={**core.auth, **XML})
        assert stated.status_code == 200, stated.text
        (completed,) = stated.json()["settlements_completed"]
        assert completed["partner_id"] == setup.partner.id

    expected = {
        first.partner.id: {
            "debits": "112.50",
            "credits": "30.00",
            "refunds": "0.00",
            "fees": "0.00",
            "reversals": "0.00",
            "net": "82.50",
        },
        second.partner.id: {
            "debits": "55.00",
            "credits": "0.00",
            "refunds": "0.00",
            "fees": "0.00",
            "reversals": "0.00",
            "net": "55.00",
        },
    }
    seen: dict[str, dict[str, Any]] = {}
    for setup in (first, second):
        (event,) = _completed_events(client, setup.partner)
        settlement = event["data"]
        assert event["type"] == "settlement.completed"
        assert settlement["partner_id"] == setup.partner.id
        assert settlement["settlement_date"] == today.isoformat()
        assert settlement["status"] == "completed"
        assert settlement["completion"] == "statement"
        assert {k: settlement[k]["value"] for k in FIGURES} == expected[setup.partner.id]
        # The event carries the settlement as the partner reads it.
        mine = client.get(f"/v1/settlements/{settlement['id']}", headers=setup.partner.auth)
        assert mine.json() == settlement
        seen[setup.partner.id] = event
    # Neither can read the other's event or settlement.
    for reader, owner in ((first, second), (second, first)):
        other = seen[owner.partner.id]
        assert (
            client.get(f"/v1/events/{other['id']}", headers=reader.partner.auth).status_code == 404
        )
        theirs = client.get(f"/v1/settlements/{other['data']['id']}", headers=reader.partner.auth)
        assert theirs.status_code == 404
