"""The loop `make run` shows: the core (simulator) pushes camt.054 and camt.053 to a running
gateway over HTTP, as a `core` partner, and the partner's day settles."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from adapters.core_banking.simulator import CoreBankingSimulator
from gateway.store.tables import ReconciliationBreak, Settlement, SettlementMessage


def test_the_simulator_pushes_its_books_to_a_running_gateway(  # type: ignore[no-untyped-def]
    live_gateway, container, make_partner
) -> None:
    simulator = CoreBankingSimulator(":memory:", seed_demo_accounts=False)
    try:
        settlement = simulator.open_account(kind="settlement", balance="1000.00", name="Wallet")
        customer = simulator.open_account(balance="500.00")
        wallet = make_partner(settlement_account=settlement, settlement_currency="CNY")
        core = make_partner(kind="core")
        simulator.ledger.post_transfer("EXT-1", customer, settlement, Decimal("42.00"), "CNY")
        pusher = simulator.start_camt_push(
            live_gateway.base_url, client_id=core.id, client_secret=core.secret, interval=3600
        )
        assert pusher.push_notifications() == 1  # the bank reports its own accounts only

        today = simulator.clock.now().date()
        (statement,) = [
            result for result in pusher.push_statements(today) if result["settlements_completed"]
        ]
        assert statement["kind"] == "statement"
        assert statement["outcome"] == {"confirmed": 1}
        # Pushing again is harmless: the same message ids answer with their first result.
        assert pusher.push_statements(today)[0]["id"] == pusher.push_statements(today)[0]["id"]
    finally:
        if simulator.pusher is not None:
            simulator.pusher.stop()
        simulator.ledger.close()

    with container.db.read() as session:
        (settled,) = session.scalars(
            select(Settlement).where(Settlement.partner_id == wallet.id)
        ).all()
        (unexplained,) = session.scalars(
            select(ReconciliationBreak).where(ReconciliationBreak.partner_id == wallet.id)
        ).all()
        formats = set(
            session.scalars(
                select(SettlementMessage.format).where(SettlementMessage.sender_id == core.id)
            )
        )
    assert settled.status == "completed" and settled.settlement_date == today
    assert (settled.debits, settled.net) == (0, 0)  # nothing of the gateway's moved
    assert unexplained.type == "unmatched_entry" and unexplained.reference == "EXT-1"
    assert formats == {"camt.054.001.08", "camt.053.001.08"}
