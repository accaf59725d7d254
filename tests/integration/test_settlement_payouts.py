"""Payouts in reconciliation: the capture's entry on the provider's clearing account is matched
to the payout, and a succeeded payout whose entry never comes becomes a missing_entry break."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from adapters.core_banking.simulator import camt
from gateway.store.tables import ReconciliationBreak, SettlementEntryRow
from tests.conftest import GSMA_CLEARING_ACCOUNT, GSMA_PROCESSING_SECONDS
from tests.payouts import deliver, get, send_payout

pytestmark = pytest.mark.usefixtures("restore_clock")


@pytest.fixture
def reconciled_clearing(container: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(
        container.settlement.policy.clearing_accounts, GSMA_CLEARING_ACCOUNT, "gsma_mm"
    )
    return GSMA_CLEARING_ACCOUNT


def succeeded_payout(client: Any, channel: Any, source: str, sandbox: Any, clock: Any) -> str:
    payout = send_payout(client, channel, source, amount="75.00").json()
    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    deliver(sandbox, client)
    assert get(client, channel, payout["id"])["status"] == "succeeded"
    return str(payout["id"])


def test_the_capture_entry_is_matched_to_its_payout(  # type: ignore[no-untyped-def]
    client,
    container,
    core,
    core_simulator,
    gsma_sandbox,
    make_partner,
    clock,
    reconciled_clearing,
) -> None:
    channel = make_partner(kind="bank_channel")
    source = core.open_account("Otieno Odhiambo", "KES", balance="5000.00")
    payout_id = succeeded_payout(client, channel, source, gsma_sandbox, clock)
    entries = [
        entry
        for entry in core_simulator.camt_entries(accounts=[reconciled_clearing])
        if entry.reference == payout_id
    ]
    assert len(entries) == 1 and entries[0].credit_debit == "CRDT"
    message = b"".join(
        camt.iter_notification(
            entries, message_id=f"PO-{payout_id[-10:]}", created=datetime.now(UTC), version="001.08"
        )
    )
    core_partner = make_partner(kind="core")
    pushed = client.post(
        "/core/v1/iso20022",
        content=message,
        headers={**core_partner.auth, "Content-Type": "application/xml"},
    )
    assert pushed.status_code == 200, pushed.text
    with container.db.read() as session:
        matched = session.scalars(
            select(SettlementEntryRow).where(SettlementEntryRow.matched_id == payout_id)
        ).all()
        assert [row.role for row in matched] == ["primary"]
        assert (
            session.scalars(
                select(ReconciliationBreak).where(ReconciliationBreak.resource_id == payout_id)
            ).all()
            == []
        )


def test_a_payout_the_core_never_reports_is_a_missing_entry(  # type: ignore[no-untyped-def]
    client,
    container,
    core,
    gsma_sandbox,
    make_partner,
    clock,
    reconciled_clearing,
) -> None:
    channel = make_partner(kind="bank_channel")
    source = core.open_account("Wanjiru Kamau", "KES", balance="5000.00")
    payout_id = succeeded_payout(client, channel, source, gsma_sandbox, clock)
    clock.advance(timedelta(hours=container.settings.settlement_missing_entry_sla_hours, minutes=5))
    assert container.settlement.detect_missing_entries() >= 1
    with container.db.read() as session:
        missing = session.scalars(
            select(ReconciliationBreak).where(ReconciliationBreak.resource_id == payout_id)
        ).all()
    assert [(b.type, b.resource_type) for b in missing] == [("missing_entry", "payout")]
