"""The core simulator's camt.054/camt.053 conform to the official ISO 20022 schemas (every
version it emits) and say what its ledger booked."""

from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal

import httpx
import pytest
from lxml import etree

from adapters.core_banking.simulator import camt
from gateway.domain.ids import new_id
from gateway.domain.settlement import SettlementEntry, Side
from gateway.iso20022 import catalog
from gateway.iso20022.reader import Record, StreamReader


def _official(name: str, data: bytes) -> None:
    schema = catalog.load_official_schema(catalog.by_name(name))
    document = etree.parse(io.BytesIO(data))
    assert schema.validate(document), [str(e) for e in schema.error_log]


@pytest.fixture
def booked(core_simulator, core):  # type: ignore[no-untyped-def]
    """A settlement account with a day of postings: a credit, a debit, a reversal."""
    settlement = core.open_account("Settlement", kind="settlement", balance="1000.00", mobile=None)
    customer = core.open_account("Customer", balance="500.00")
    ledger = core_simulator.ledger
    start = ledger.last_entry_id()
    transfer, refund = new_id("tr"), new_id("rf")
    ledger.post_transfer(transfer, customer, settlement, Decimal("25.50"), "CNY")
    ledger.post_transfer(refund, settlement, customer, Decimal("5.25"), "CNY")
    ledger.reverse_transfer("RV" + transfer[3:], transfer)
    return settlement, customer, start, transfer, refund


@pytest.mark.parametrize("version", camt.VERSIONS)
def test_notifications_conform_and_carry_the_ledger(core_simulator, booked, version) -> None:  # type: ignore[no-untyped-def]
    settlement, customer, start, transfer, refund = booked
    built = core_simulator.camt054(after=start, accounts=[settlement, customer], version=version)
    assert built is not None
    data, last = built
    _official(f"camt.054.{version}", data)
    assert last == core_simulator.ledger.last_entry_id()
    items = list(StreamReader(io.BytesIO(data)))
    records = [i for i in items if isinstance(i, Record)]
    assert sorted(r.account for r in records) == sorted([settlement, customer])
    entries = [i for i in items if isinstance(i, SettlementEntry) and i.account == settlement]
    assert [(e.reference, e.side, e.amount.value, e.reversal) for e in entries] == [
        (transfer, Side.CREDIT, "25.50", False),
        (refund, Side.DEBIT, "5.25", False),
        (transfer, Side.DEBIT, "25.50", True),  # the reversal names what it reverses
    ]
    postings = {p["external_reference"]: p for p in core_simulator.postings(account=settlement)}
    assert entries[0].core_reference == postings[transfer]["core_reference"]
    assert core_simulator.camt054(after=last, accounts=[settlement]) is None


@pytest.mark.parametrize("version", camt.VERSIONS)
def test_statements_conform_and_balance(core_simulator, booked, version) -> None:  # type: ignore[no-untyped-def]
    settlement = booked[0]
    today = core_simulator.clock.now().date()
    data = core_simulator.camt053(settlement, today, version=version)
    _official(f"camt.053.{version}", data)
    items = list(StreamReader(io.BytesIO(data)))
    (record,) = [i for i in items if isinstance(i, Record)]
    entries = [i for i in items if isinstance(i, SettlementEntry)]
    opening, closing = record.balance("OPBD"), record.balance("CLBD")
    assert opening is not None and closing is not None
    assert closing.on == today and opening.on == today - timedelta(days=1)
    signed = opening.side.sign * opening.amount.minor + sum(e.signed_minor for e in entries)
    assert signed == closing.side.sign * closing.amount.minor
    assert closing.amount.value == "994.75"  # 1000 + 25.50 - 5.25 - 25.50


def test_a_large_statement_is_written_in_parts() -> None:
    day = date(2026, 1, 2)
    entries = (
        camt.CamtEntry(n, "9000000000000101", Decimal("1.00"), "CNY", "CRDT", day, day,
                       f"CB{n:012d}", f"tr_{n:026d}")
        for n in range(1, 5001)
    )  # fmt: skip
    parts = list(
        camt.iter_statement(
            entries,
            account="9000000000000101",
            currency="CNY",
            day=day,
            opening=Decimal(0),
            closing=Decimal(5000),
            message_id="BIG",
            created=camt.datetime.now(camt.UTC),
        )
    )
    assert len(parts) > 20 and max(len(p) for p in parts) < 200_000
    _official("camt.053.001.08", b"".join(parts))


def test_escaping_keeps_messages_well_formed() -> None:
    day = date(2026, 1, 2)
    entry = camt.CamtEntry(1, "9000000000000101", Decimal("1.00"), "CNY", "CRDT", day, day,
                           "CB<&>\"1", "tr_<x>", description="a & b < c")  # fmt: skip
    data = b"".join(
        camt.iter_notification([entry], message_id="M&1", created=camt.datetime.now(camt.UTC))
    )
    _official("camt.054.001.08", data)
    (parsed,) = [i for i in StreamReader(io.BytesIO(data)) if isinstance(i, SettlementEntry)]
    assert (parsed.core_reference, parsed.reference) == ('CB<&>"1', "tr_<x>")


def test_the_admin_endpoints_serve_the_messages(core_simulator, booked) -> None:  # type: ignore[no-untyped-def]
    settlement, _customer, start = booked[:3]
    base = core_simulator.server.base_url
    notified = httpx.get(
        f"{base}/simulator/camt054",
        params={"since": start, "account": settlement, "version": "001.04"},
        timeout=10,
    )
    assert notified.status_code == 200
    assert notified.headers["content-type"] == "application/xml"
    _official("camt.054.001.04", notified.content)
    last = notified.headers["X-Camt-Last-Entry"]
    nothing = httpx.get(
        f"{base}/simulator/camt054", params={"since": last, "account": settlement}, timeout=10
    )
    assert nothing.status_code == 204
    today = core_simulator.clock.now().date().isoformat()
    statement = httpx.get(
        f"{base}/simulator/camt053", params={"account": settlement, "date": today}, timeout=10
    )
    assert statement.status_code == 200
    _official("camt.053.001.08", statement.content)
    bad = httpx.get(f"{base}/simulator/camt053", params={"account": settlement, "date": "x"})
    assert bad.status_code == 400
    unknown = httpx.get(
        f"{base}/simulator/camt053", params={"account": "1234567", "date": today}, timeout=10
    )
    assert unknown.status_code == 404
    no_target = httpx.post(f"{base}/simulator/camt/push", json={}, timeout=10)
    assert no_target.status_code == 409
