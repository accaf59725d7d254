"""Fees on credits (settlement account -> customer): quoted on the transfer, booked by the fee
worker as their own core posting, waived when the credit fails; schedules are per direction."""

from __future__ import annotations

from decimal import Decimal

from gateway.store.tables import Transfer
from tests.flows import Setup, charge_fees, post, post_transfer


def _credit_schedule(container, s: Setup) -> None:  # type: ignore[no-untyped-def]
    """0.50 + 0.2 %, at least 1.00, at most 3.00, on credits only."""
    charge_fees(container, s, "credit", fixed=50, rate_ppm=2_000, minimum=100, maximum=300)


def _fee_reference(container, transfer_id: str) -> str:  # type: ignore[no-untyped-def]
    with container.db.read() as session:
        reference = session.get(Transfer, transfer_id).fee_reference
    assert reference
    return str(reference)


def test_a_credit_fee_is_shown_and_booked_as_its_own_posting(
    client, container, core, funded
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    _credit_schedule(container, s)
    transfer = post_transfer(client, s, "1000.00", direction="credit").json()
    assert transfer["status"] == "succeeded"
    assert transfer["fee"] == {"amount": {"value": "2.50", "currency": "CNY"}, "status": "pending"}
    fee_account = container.settings.fee_income_accounts["CNY"]
    before = core.available(fee_account)
    assert container.recovery.book_fees() >= 1
    after = client.get(f"/v1/transfers/{transfer['id']}", headers=s.partner.auth).json()
    assert after["fee"] == {"amount": {"value": "2.50", "currency": "CNY"}, "status": "booked"}
    assert core.available(s.account) == "11000.00"  # the customer receives the full amount
    assert core.available(s.settlement) == "98997.50"  # -1000.00 - 2.50 fee
    assert Decimal(core.available(fee_account)) - Decimal(before) == Decimal("2.50")
    reference = _fee_reference(container, transfer["id"])
    assert reference != transfer["id"]
    assert (core.postings(transfer["id"]), core.postings(reference)) == (1, 1)
    container.recovery.book_fees()  # a booked fee is never posted again
    assert core.postings(reference) == 1


def test_credit_fees_are_clamped_to_the_schedule(client, container, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    _credit_schedule(container, s)
    small = post_transfer(client, s, "10.00", direction="credit").json()  # 0.52 -> minimum
    large = post_transfer(client, s, "4000.00", direction="credit").json()  # 8.50 -> maximum
    assert small["fee"]["amount"]["value"] == "1.00"
    assert large["fee"]["amount"]["value"] == "3.00"


def test_a_credit_schedule_does_not_charge_debits(client, container, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    _credit_schedule(container, s)
    debit = post_transfer(client, s, "1000.00").json()
    assert debit["status"] == "succeeded"
    assert debit["fee"] == {"amount": {"value": "0.00", "currency": "CNY"}, "status": "none"}
    container.recovery.book_fees()
    assert core.available(s.settlement) == "101000.00"


def test_a_failed_credit_waives_its_fee(client, container, core, core_simulator, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    _credit_schedule(container, s)
    core_simulator.ledger.update_account(s.account, status="DORMANT")
    transfer = post_transfer(client, s, "1000.00", direction="credit").json()
    assert transfer["status"] == "failed"
    assert transfer["fee"] == {"amount": {"value": "2.50", "currency": "CNY"}, "status": "waived"}
    container.recovery.book_fees()
    assert core.available(s.settlement) == "100000.00"
    assert core.postings(_fee_reference(container, transfer["id"])) == 0


def test_a_voided_hold_leaves_no_fee_pending(client, container, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    charge_fees(container, s, fixed=100, maximum=1_000)
    held = post_transfer(client, s, "300.00", capture_method="manual").json()
    assert held["fee"]["status"] == "pending"
    voided = post(client, s, f"/v1/transfers/{held['id']}/void").json()
    assert voided["status"] == "voided"
    container.recovery.book_fees()
    after = client.get(f"/v1/transfers/{held['id']}", headers=s.partner.auth).json()
    assert core.postings(_fee_reference(container, held["id"])) == 0
    assert after["fee"]["status"] != "pending"  # never to be booked: waived (or none)
