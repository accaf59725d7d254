"""A day of transfers reconciled end to end: the core's camt.054 and camt.053, every break type.

The day is real: transfers, a refund and fees go through the API and the session's core
simulator books them. The messages are the simulator's own camt output, with breaks planted the
way they happen at a bank: an entry booked twice, a reversal after the day settled, an amount
and a currency that disagree, an entry that never comes, money nobody can explain.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.core_banking.simulator import camt
from gateway.store.tables import (
    AuditEntry,
    Event,
    FeeScheduleRow,
    ReconciliationBreak,
    SettlementEntryRow,
    SettlementMessage,
)
from tests.event_schemas import assert_event_matches_schema
from tests.integration.test_links import create_active_link

XML = {"Content-Type": "application/xml"}


def post(client, path: str, partner, body: dict[str, Any]) -> Any:  # type: ignore[no-untyped-def]
    headers = {**partner.auth, "Idempotency-Key": str(uuid.uuid4())}
    response = client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


def money(value: str) -> dict[str, str]:
    return {"value": value, "currency": "CNY"}


def push_xml(client, core_partner, data: bytes) -> Any:  # type: ignore[no-untyped-def]
    return client.post("/core/v1/iso20022", content=data, headers={**core_partner.auth, **XML})


@dataclasses.dataclass
class Day:
    """One partner's business day at the bank."""

    wallet: Any
    core: Any
    operator: Any
    settlement: str
    fee_income: str
    customer: str
    transfers: dict[str, str]  # name -> tr_ id
    refund: str
    today: date

    def entries(self, simulator: Any, *, after: int = 0) -> list[camt.CamtEntry]:
        return simulator.camt_entries(after=after, accounts=[self.settlement, self.fee_income])


@pytest.fixture
def reconciled_fees(container, core, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    """A fee income account known to transfers (fee posting) and settlement (reconciled)."""
    account = core.open_account("Fee income CNY", kind="fee", balance="0.00", mobile=None)
    monkeypatch.setitem(container.transfers.policy.fee_income_accounts, "CNY", account)
    monkeypatch.setitem(container.settlement.policy.fee_income_accounts, "CNY", account)
    return str(account)


def seed_day(client, container, core, core_simulator, make_partner, fee_income: str) -> Day:  # type: ignore[no-untyped-def]
    settlement = core.open_account(
        "Wallet settlement", kind="settlement", balance="1000000.00", mobile=None
    )
    wallet = make_partner(settlement_account=settlement, settlement_currency="CNY")
    with container.db.transaction() as session:  # 1.00 CNY per debit
        session.add(
            FeeScheduleRow(partner_id=wallet.id, direction="debit", currency="CNY", fixed=100)
        )
    link = create_active_link(client, container, core, wallet)

    def transfer(direction: str, value: str) -> str:
        body = {"link_id": link["id"], "direction": direction, "amount": money(value)}
        created = post(client, "/v1/transfers", wallet, body)
        assert created["status"] == "succeeded", created
        return str(created["id"])

    names = {
        "plain": ("debit", "100.00"),
        "refunded": ("debit", "250.00"),
        "credit": ("credit", "80.00"),
        "amount": ("debit", "40.00"),
        "currency": ("debit", "30.00"),
        "missing": ("debit", "20.00"),
        "twice": ("debit", "60.00"),
        "reversed": ("debit", "70.00"),
    }
    transfers = {name: transfer(*spec) for name, spec in names.items()}
    refund = post(
        client, f"/v1/transfers/{transfers['refunded']}/refunds", wallet, {"amount": money("50.00")}
    )
    assert refund["status"] == "succeeded"
    while container.recovery.book_fees(50):
        pass
    customer = core_simulator.postings(transfers["plain"])[0]["debit_account"]
    return Day(
        wallet=wallet,
        core=make_partner(kind="core"),
        operator=make_partner(kind="operator"),
        settlement=str(settlement),
        fee_income=fee_income,
        customer=customer,
        transfers=transfers,
        refund=str(refund["id"]),
        today=container.clock.now().date(),
    )


def plant(day: Day, entries: list[camt.CamtEntry]) -> list[camt.CamtEntry]:
    """What the core reports instead of what it booked (on the settlement account)."""
    planted = []
    for entry in entries:
        if entry.account == day.settlement and not entry.reversal:
            if entry.reference == day.transfers["amount"]:
                entry = entry.but(amount=Decimal("40.50"))
            elif entry.reference == day.transfers["currency"]:
                entry = entry.but(currency="USD")
            elif entry.reference == day.transfers["missing"]:
                continue
        planted.append(entry)
    return sorted(planted, key=lambda e: (e.account, e.entry_id))


def notification(entries: list[camt.CamtEntry], message_id: str, version: str) -> bytes:
    return b"".join(
        camt.iter_notification(
            entries, message_id=message_id, created=datetime.now(UTC), version=version
        )
    )


def statement(day: Day, simulator: Any, version: str, message_id: str) -> bytes:
    entries = [e for e in plant(day, day.entries(simulator)) if e.account == day.settlement]
    ledger = simulator.ledger
    return b"".join(
        camt.iter_statement(
            entries,
            account=day.settlement,
            currency="CNY",
            day=day.today,
            opening=ledger.balance_at_end_of(day.settlement, day.today - timedelta(days=1)),
            closing=ledger.balance_at_end_of(day.settlement, day.today),
            message_id=message_id,
            created=datetime.now(UTC),
            version=version,
        )
    )


def breaks_of(client, day: Day) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = f"/admin/v1/reconciliation/breaks?partner_id={day.wallet.id}&limit=200"
        page = client.get(
            query + (f"&cursor={cursor}" if cursor else ""), headers=day.operator.auth
        )
        assert page.status_code == 200, page.text
        found += page.json()["data"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return found


@pytest.fixture
def after_sla(clock, container) -> Any:  # type: ignore[no-untyped-def]
    """Run a block with the shared clock past the missing-entry SLA (then put it back: tokens
    issued before do not work in between)."""

    @contextlib.contextmanager
    def moved() -> Iterator[None]:
        delta = timedelta(hours=container.settings.settlement_missing_entry_sla_hours, minutes=5)
        clock.advance(delta)
        try:
            yield
        finally:
            clock.advance(-delta)

    return moved


@pytest.mark.parametrize("version", ["001.02", "001.04", "001.08"])
def test_a_day_reconciles_with_exactly_the_planted_breaks(  # type: ignore[no-untyped-def]
    version, client, container, core, core_simulator, make_partner, reconciled_fees, after_sla
) -> None:
    day = seed_day(client, container, core, core_simulator, make_partner, reconciled_fees)
    transfers = day.transfers

    # The core booked one debit a second time (a core that does not deduplicate).
    core_simulator.ledger.post_transfer(
        transfers["twice"], day.customer, day.settlement, Decimal("60.00"), "CNY", dedup=False
    )
    # Money nobody at the gateway moved: a deposit onto the settlement account.
    core.deposit(day.settlement, "12.34", description="unexplained credit")

    # Intraday: camt.054 of everything booked so far.
    first = day.entries(core_simulator)
    cursor = max(e.entry_id for e in first)
    notified = push_xml(
        client, day.core, notification(plant(day, first), f"N1-{uuid.uuid4().hex[:8]}", version)
    )
    assert notified.status_code == 200, notified.text
    assert notified.json()["kind"] == "notification"
    plain = client.get(f"/v1/transfers/{transfers['plain']}", headers=day.wallet.auth).json()
    assert plain["settlement_date"] == day.today.isoformat()

    # Later the core reverses a transfer that had settled; the next camt.054 says so.
    core_simulator.ledger.reverse_transfer("RV" + transfers["reversed"][3:], transfers["reversed"])
    second = day.entries(core_simulator, after=cursor)
    assert [e.reversal for e in second] == [True]
    notified = push_xml(
        client, day.core, notification(second, f"N2-{uuid.uuid4().hex[:8]}", version)
    )
    assert notified.status_code == 200, notified.text
    reversed_ = client.get(f"/v1/transfers/{transfers['reversed']}", headers=day.wallet.auth).json()
    assert reversed_["status"] == "reversed"  # the partner learns the money went back
    assert "reversed by the core" in reversed_["history"][-1]["cause"]
    with container.db.read() as session:
        (announced,) = session.scalars(
            select(Event).where(
                Event.resource_id == transfers["reversed"], Event.type == "transfer.reversed"
            )
        ).all()
    assert_event_matches_schema(announced)

    # End of day: the statement lists the day again (the same entries: confirmed, not recounted).
    eod = statement(day, core_simulator, version, f"S-{uuid.uuid4().hex[:8]}")
    stated = push_xml(client, day.core, eod)
    assert stated.status_code == 200, stated.text
    result = stated.json()
    assert result["kind"] == "statement"
    assert result["outcome"] == {"confirmed": result["entries"]}
    assert result["breaks"] == {}
    (completed,) = result["settlements_completed"]
    assert completed["partner_id"] == day.wallet.id
    assert completed["settlement_date"] == day.today.isoformat()

    # The entry that never came: found once its SLA has passed.
    with after_sla():
        assert container.settlement.detect_missing_entries(5000) >= 1

    breaks = breaks_of(client, day)
    found = sorted((b["type"], (b["resource"] or {}).get("id") or b["reference"]) for b in breaks)
    unmatched = next(b for b in breaks if b["type"] == "unmatched_entry")
    assert found == sorted(
        [
            ("amount_mismatch", transfers["amount"]),
            ("currency_mismatch", transfers["currency"]),
            ("duplicate", transfers["twice"]),
            ("reversed_after_settlement", transfers["reversed"]),
            ("missing_entry", transfers["missing"]),
            ("unmatched_entry", unmatched["reference"]),
        ]
    )
    assert unmatched["reference"].startswith("DEP") and unmatched["resource"] is None
    assert unmatched["actual"] == {"amount": money("12.34"), "side": "credit"}
    by_type = {b["type"]: b for b in breaks}
    assert by_type["amount_mismatch"]["expected"] == {"amount": money("40.00"), "side": "credit"}
    assert by_type["amount_mismatch"]["actual"] == {"amount": money("40.50"), "side": "credit"}
    assert by_type["currency_mismatch"]["actual"]["amount"] == {"value": "30.00", "currency": "USD"}
    assert by_type["missing_entry"]["expected"] == {"amount": money("20.00"), "side": "credit"}
    assert by_type["reversed_after_settlement"]["actual"] == {
        "amount": money("70.00"),
        "side": "debit",
    }
    assert all(b["status"] == "open" and b["account"] == "****" + day.settlement[-4:]
               for b in breaks)  # fmt: skip

    # The net position: what the core booked on the partner's settlement account for it.
    settlements = client.get("/v1/settlements", headers=day.wallet.auth)
    assert settlements.status_code == 200, settlements.text
    (settled,) = settlements.json()["data"]
    assert settled["status"] == "completed" and settled["completion"] == "statement"
    assert {
        k: settled[k]["value"] for k in ("debits", "credits", "refunds", "fees", "reversals", "net")
    } == {
        # 100 + 250 + 40.50 (as booked) + 60 twice + 70; the USD entry is not CNY money
        "debits": "580.50",
        "credits": "80.00",
        "refunds": "50.00",
        "fees": "7.00",  # seven debits at 1.00
        "reversals": "-70.00",
        "net": "373.50",
    }
    assert settled["entry_count"] == 16

    with container.db.read() as session:
        events = session.scalars(
            select(Event).where(Event.resource_id == settled["id"]).order_by(Event.sequence)
        ).all()
    (event,) = events
    envelope = assert_event_matches_schema(event)
    assert envelope["type"] == "settlement.completed"
    assert envelope["data"] == settled
    assert event.partner_id == day.wallet.id

    # The fee income account's legs are the other side of the fees: recorded, not counted.
    with container.db.read() as session:
        roles = dict(
            session.execute(
                select(SettlementEntryRow.role, func.count())
                .where(SettlementEntryRow.account == day.fee_income)
                .group_by(SettlementEntryRow.role)
            ).all()
        )
    assert roles == {"counterpart": 7}


@pytest.mark.parametrize(
    ("message", "version"),
    [("camt.053", "001.08"), ("camt.053", "001.04"), ("camt.054", "001.02"),
     ("camt.054", "001.08")],
)  # fmt: skip
def test_a_resend_changes_nothing(  # type: ignore[no-untyped-def]
    message, version, client, container, core, core_simulator, make_partner, reconciled_fees
) -> None:
    day = seed_day(client, container, core, core_simulator, make_partner, reconciled_fees)
    core.deposit(day.settlement, "5.00", description="unexplained credit")
    message_id = f"R-{uuid.uuid4().hex[:8]}"
    if message == "camt.053":
        eod = statement(day, core_simulator, version, message_id)
    else:
        eod = notification(plant(day, day.entries(core_simulator)), message_id, version)
    first = push_xml(client, day.core, eod)
    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers

    def state() -> tuple[int, ...]:
        with container.db.read() as session:
            return (
                session.scalar(select(func.count()).select_from(SettlementEntryRow)) or 0,
                session.scalar(select(func.count()).select_from(ReconciliationBreak)) or 0,
                session.scalar(select(func.count()).select_from(Event)) or 0,
                session.scalar(select(func.count()).select_from(SettlementMessage)) or 0,
            )

    before = state()
    settlement = client.get("/v1/settlements", headers=day.wallet.auth).json()["data"]
    # A statement completes the day; a notification only keeps the position up to date.
    assert [s["status"] for s in settlement] == ["completed" if message == "camt.053" else "open"]
    again = push_xml(client, day.core, eod)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert state() == before
    assert client.get("/v1/settlements", headers=day.wallet.auth).json()["data"] == settlement

    # The same message id with other content is not a resend.
    altered = eod.replace(b"5.00</Amt>", b"5.01</Amt>")
    assert altered != eod
    refused = push_xml(client, day.core, altered)
    assert refused.status_code == 422
    assert refused.json()["code"] == "message_id_reused"
    assert state() == before


def test_an_entry_that_arrives_after_its_missing_break_resolves_it(  # type: ignore[no-untyped-def]
    client, container, core, core_simulator, make_partner, reconciled_fees, after_sla
) -> None:
    day = seed_day(client, container, core, core_simulator, make_partner, reconciled_fees)

    def missing() -> list[ReconciliationBreak]:
        with container.db.read() as session:
            return list(
                session.scalars(
                    select(ReconciliationBreak).where(
                        ReconciliationBreak.partner_id == day.wallet.id,
                        ReconciliationBreak.type == "missing_entry",
                    )
                )
            )

    assert missing() == []  # within the SLA nothing is missing yet
    container.settlement.detect_missing_entries(5000)
    assert missing() == []
    with after_sla():
        container.settlement.detect_missing_entries(5000)
        found = missing()
        container.settlement.detect_missing_entries(5000)  # a second pass adds nothing
        assert len(missing()) == len(found)
    # Eight transfers, a refund and seven fees: nothing reported yet.
    assert len(found) == 16
    assert {b.resource_type for b in found} == {"transfer", "refund", "fee"}

    data = notification(day.entries(core_simulator), f"N-{uuid.uuid4().hex[:8]}", "001.08")
    late = push_xml(client, day.core, data)
    assert late.status_code == 200, late.text
    assert late.json()["breaks"] == {}
    with container.db.read() as session:
        rows = session.scalars(
            select(ReconciliationBreak).where(ReconciliationBreak.partner_id == day.wallet.id)
        ).all()
        audits = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                AuditEntry.action == "reconciliation.break_resolved",
                AuditEntry.target_id.in_([b.id for b in rows]),
            )
        )
    assert len(rows) == 16
    assert {(b.status, b.resolved_by) for b in rows} == {("resolved", "system")}
    assert all("arrived late" in (b.resolution or "") for b in rows)
    assert audits == 16
