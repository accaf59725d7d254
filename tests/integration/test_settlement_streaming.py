"""Large statements stream: the request body is never held whole, nor are its entries.

Two measures, because lxml's tree lives in libxml2's heap, which tracemalloc does not see:
tracemalloc bounds what Python holds (a buffered body or a list of entries would exceed it), and
a fresh process's peak RSS bounds what the parser holds (a whole tree of 20,000 entries takes
~85 MB; streamed, under 1 MB). The 1,000,000-entry figure is in bench/ (not a test).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from adapters.core_banking.simulator.camt import CamtEntry, iter_statement
from gateway.store.tables import SettlementEntryRow, SettlementMessageChunk

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = 20_000
DAY = date(2026, 3, 2)


class PartStream:
    """A request body arriving in parts (like a socket): read(n) never returns more than asked."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        self.parts = parts
        self.buffer = b""
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            part = next(self.parts, None)
            if part is None:
                break
            self.buffer += part
        if size < 0:
            size = len(self.buffer)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        self.size += len(data)
        return data


def statement_parts(account: str, count: int) -> Iterator[bytes]:
    def entries() -> Iterator[CamtEntry]:
        for n in range(1, count + 1):
            yield CamtEntry(
                entry_id=n,
                account=account,
                amount=Decimal("12.34"),
                currency="CNY",
                credit_debit="CRDT",
                booking_date=DAY,
                value_date=DAY,
                core_reference=f"CB{uuid.uuid4().hex[:20].upper()}",
                reference=f"WIRE{n:010d}",
                description="incoming wire",
            )

    return iter_statement(
        entries(),
        account=account,
        currency="CNY",
        day=DAY,
        opening=Decimal(0),
        closing=Decimal(0),
        message_id=f"BIG-{uuid.uuid4().hex[:10]}",
        created=datetime.now(UTC),
    )


class Body:
    """A request body already in memory (made before tracing starts), read in parts."""

    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.view) if size < 0 else self.position + size
        chunk = bytes(self.view[self.position : end])
        self.position += len(chunk)
        return chunk


def test_a_large_statement_goes_through_in_bounded_python_memory(  # type: ignore[no-untyped-def]
    container, make_partner
) -> None:
    # A customer account: received, validated, stored and read again in full, not reconciled
    # (matching at this scale is the benchmark's part).
    data = b"".join(statement_parts("8100000000009999", ENTRIES))
    assert len(data) > 9_000_000
    sender = make_partner(kind="core")
    principal = container.partners.principal(sender.id, 1)

    tracemalloc.start()
    try:
        outcome = container.settlement.ingest_iso20022(principal, Body(data))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert outcome.body["entries"] == ENTRIES
    assert outcome.body["outcome"] == {"outside_scope": ENTRIES}
    # Holding the body (9+ MB) or its entries (~20 MB of objects) would exceed this bound; a
    # compressed chunk in flight and one batch of entries fit comfortably.
    assert peak < 8_000_000, f"peak Python memory {peak / 1e6:.1f} MB"
    with container.db.read() as session:
        stored = session.scalar(
            select(func.sum(func.length(SettlementMessageChunk.data))).where(
                SettlementMessageChunk.message_pk == outcome.body["id"]
            )
        )
    assert 0 < stored < len(data) / 5  # kept for audit, compressed


def test_a_large_statement_of_a_settlement_account_is_reconciled_in_batches(  # type: ignore[no-untyped-def]
    container, core, make_partner
) -> None:
    account = core.open_account("Settlement", kind="settlement", balance="0.00", mobile=None)
    make_partner(settlement_account=account, settlement_currency="CNY")
    sender = make_partner(kind="core")
    principal = container.partners.principal(sender.id, 1)
    count = 3 * container.settings.settlement_apply_batch_size + 7
    outcome = container.settlement.ingest_iso20022(
        principal, PartStream(statement_parts(account, count))
    )
    assert outcome.body["breaks"] == {"unmatched_entry": count}
    with container.db.read() as session:
        stored = session.scalar(
            select(func.count())
            .select_from(SettlementEntryRow)
            .where(SettlementEntryRow.account == account)
        )
    assert stored == count


def test_the_parser_holds_no_tree_of_a_large_statement() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.integration.test_settlement_streaming import PartStream, statement_parts
        from gateway.iso20022 import catalog
        from gateway.iso20022.reader import StreamReader

        def peak_mb():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM"):
                    return int(line.split()[1]) / 1024

        catalog.schema(catalog.by_name("camt.053.001.08"))
        base = peak_mb()
        body = PartStream(statement_parts("9000000000000101", {ENTRIES}))
        items = sum(1 for _ in StreamReader(body))
        print(items, round(peak_mb() - base, 1))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    items, grown = result.stdout.split()
    assert int(items) == ENTRIES + 2  # header, record, entries
    # The whole tree of these 20,000 entries takes ~85 MB in libxml2's heap.
    assert float(grown) < 20, f"the parser's process grew by {grown} MB"
