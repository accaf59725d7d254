"""Matching by the core's reference, and what a partner sees of it.

Some cores do not carry the gateway's end-to-end reference (`tr_`, `rf_`) to their reports:
the entry then names the posting only by the core's own reference (`AcctSvcrRef`, or
`core_reference` in a JSON batch), which is what `PostTransfer` answered when the gateway
booked the movement. Such entries match like referenced ones, and the transfer shows the
entry's booking date as its `settlement_date`.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from adapters.core_banking.simulator import camt
from gateway.store.tables import Refund, Transfer
from tests.flows import Setup, post, post_transfer

XML = {"Content-Type": "application/xml"}


@dataclasses.dataclass
class Booked:
    setup: Setup
    debit: str
    credit: str
    refund: str
    entries: list[camt.CamtEntry]  # the settlement account's entries, references removed


@pytest.fixture
def booked(client, container, core_simulator, funded) -> Booked:  # type: ignore[no-untyped-def]
    """A debit (100.00), a credit (30.00) and a refund (40.00 of the debit), booked by the
    core; their entries on the settlement account as a core without end-to-end references
    reports them."""
    setup = funded()
    debit = post_transfer(client, setup, "100.00")
    credit = post_transfer(client, setup, "30.00", direction="credit")
    assert debit.status_code == credit.status_code == 201, (debit.text, credit.text)
    assert debit.json()["status"] == credit.json()["status"] == "succeeded"
    refund = post(
        client,
        setup,
        f"/v1/transfers/{debit.json()['id']}/refunds",
        {"amount": {"value": "40.00", "currency": "CNY"}},
    )
    assert refund.status_code == 201, refund.text
    assert refund.json()["status"] == "succeeded"
    entries = core_simulator.camt_entries(accounts=[setup.settlement])
    assert len(entries) == 3
    with container.db.read() as session:
        core_references = set(
            session.scalars(
                select(Transfer.core_reference).where(
                    Transfer.id.in_([debit.json()["id"], credit.json()["id"]])
                )
            )
        ) | {session.scalar(select(Refund.core_reference).where(Refund.id == refund.json()["id"]))}
    # The premise: the core's reference of each entry is the one the gateway recorded.
    assert {e.core_reference for e in entries} == core_references
    return Booked(
        setup=setup,
        debit=debit.json()["id"],
        credit=credit.json()["id"],
        refund=refund.json()["id"],
        entries=[e.but(reference=None) for e in entries],
    )


def _json_entry(e: camt.CamtEntry) -> dict[str, Any]:
    entry = {
        "account": e.account,
        "amount": {"value": f"{e.amount:.2f}", "currency": e.currency},
        "credit_debit": "credit" if e.credit_debit == "CRDT" else "debit",
        "booking_date": e.booking_date.isoformat(),
        "value_date": e.value_date.isoformat(),
        "core_reference": e.core_reference,
        "entry_reference": f"NTRY{e.entry_id:012d}",
    }
    if e.reference is not None:
        entry["reference"] = e.reference
    return entry


def _json_batch(entries: list[camt.CamtEntry]) -> dict[str, Any]:
    return {"batch_id": f"B-{uuid.uuid4().hex}", "entries": [_json_entry(e) for e in entries]}


def _push(client, core_partner, fmt: str, entries: list[camt.CamtEntry]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    if fmt == "json":
        response = client.post(
            "/core/v1/settlement-events", json=_json_batch(entries), headers=core_partner.auth
        )
    else:
        version = fmt.rsplit("-", 1)[1]
        data = b"".join(
            camt.iter_notification(
                entries,
                message_id=f"N-{uuid.uuid4().hex[:10]}",
                created=datetime.now(UTC),
                version=version,
            )
        )
        assert b"EndToEndId" not in data
        response = client.post(
            "/core/v1/iso20022", content=data, headers={**core_partner.auth, **XML}
        )
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize("fmt", ["json", "camt054-001.02", "camt054-001.08"])
def test_entries_without_end_to_end_reference_match_by_core_reference(  # type: ignore[no-untyped-def]
    fmt, client, make_partner, booked
) -> None:
    wallet = booked.setup.partner
    # The core booked after its cut-off: the booking date, not the day of the transfer, is
    # the settlement date.
    on: date = booked.entries[0].booking_date + timedelta(days=1)
    entries = [e.but(booking_date=on, value_date=on) for e in booked.entries]
    for transfer_id in (booked.debit, booked.credit):
        before = client.get(f"/v1/transfers/{transfer_id}", headers=wallet.auth)
        assert before.json()["settlement_date"] is None

    result = _push(client, make_partner(kind="core"), fmt, entries)
    assert result["outcome"] == {"matched": 3}
    assert result["breaks"] == {}

    # A partner sees it on the transfer resource.
    for transfer_id in (booked.debit, booked.credit):
        transfer = client.get(f"/v1/transfers/{transfer_id}", headers=wallet.auth)
        assert transfer.status_code == 200, transfer.text
        assert transfer.json()["settlement_date"] == on.isoformat()
    # The refund matched as the refund it is: it is in the position under `refunds`.
    (settlement,) = client.get("/v1/settlements", headers=wallet.auth).json()["data"]
    assert settlement["settlement_date"] == on.isoformat()
    assert settlement["status"] == "open"
    assert {
        k: settlement[k]["value"]
        for k in ("debits", "credits", "refunds", "fees", "reversals", "net")
    } == {
        "debits": "100.00",
        "credits": "30.00",
        "refunds": "40.00",
        "fees": "0.00",
        "reversals": "0.00",
        "net": "30.00",
    }
    assert settlement["entry_count"] == 3
    # Nothing is missing for these movements any more, and nothing else was raised.
    operator = make_partner(kind="operator")
    breaks = client.get(
        f"/admin/v1/reconciliation/breaks?partner_id={wallet.id}", headers=operator.auth
    )
    assert breaks.json()["data"] == []


def test_an_end_to_end_reference_that_is_not_ours_falls_back_to_the_core_reference(  # type: ignore[no-untyped-def]
    client, make_partner, booked
) -> None:
    """A core that fills the end-to-end reference with its own (or the customer's) text."""
    entries = [e.but(reference=f"E2E{e.entry_id}") for e in booked.entries]
    result = _push(client, make_partner(kind="core"), "json", entries)
    assert result["outcome"] == {"matched": 3}
    transfer = client.get(f"/v1/transfers/{booked.debit}", headers=booked.setup.partner.auth)
    assert transfer.json()["settlement_date"] == entries[0].booking_date.isoformat()
