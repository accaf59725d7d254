"""The simulator's ledger rules, directly (no SOAP): expiry, limits, dedup, double entry, paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from adapters.core_banking.simulator.ledger import Ledger, LedgerFault
from adapters.core_banking.simulator.seed import DEMO_ACCOUNTS, seed
from gateway.domain.clock import FrozenClock

D = Decimal


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2025, 3, 10, 9, 0, tzinfo=UTC))


@pytest.fixture
def ledger(clock: FrozenClock) -> Ledger:
    book = Ledger(":memory:", clock=clock)
    book.open_account("10000001", name="A", currency="CNY", balance=D("100.00"))
    book.open_account("10000002", name="B", currency="CNY", balance=D("0"))
    book.open_account("10000003", name="C", currency="USD", balance=D("50.00"))
    return book


def _fault(call, *args, **kwargs) -> LedgerFault:  # type: ignore[no-untyped-def]
    with pytest.raises(LedgerFault) as caught:
        call(*args, **kwargs)
    return caught.value


def test_double_entry_moves_both_balances_and_writes_two_entries(ledger: Ledger) -> None:
    posting, replayed = ledger.post_transfer("tr_1", "10000001", "10000002", D("30.00"), "CNY")
    assert not replayed and posting.status == "BOOKED"
    assert ledger.get_balance("10000001").ledger == D("70.00000")
    assert ledger.get_balance("10000002").ledger == D("30.00000")
    entries, _ = ledger.statement("10000001", posting.booking_date, posting.booking_date)
    assert [(e.credit_debit, e.amount) for e in entries] == [("DBIT", D("30.00000"))]


def test_replay_and_mismatch(ledger: Ledger) -> None:
    first, _ = ledger.post_transfer("tr_1", "10000001", "10000002", D("10.00"), "CNY")
    again, replayed = ledger.post_transfer(
        "tr_1", "10000001", "10000002", D("10.00"), "CNY", description="other text"
    )
    assert replayed and again.core_reference == first.core_reference
    fault = _fault(ledger.post_transfer, "tr_1", "10000001", "10000002", D("11.00"), "CNY")
    assert (fault.code, fault.field) == ("DUPLICATE_REFERENCE_MISMATCH", "ExternalReference")
    assert len(ledger.postings(reference="tr_1")) == 1
    # A core that does not deduplicate books the replay again.
    _, replayed = ledger.post_transfer(
        "tr_1", "10000001", "10000002", D("10.00"), "CNY", dedup=False
    )
    assert not replayed and len(ledger.postings(reference="tr_1")) == 2


def test_holds_reduce_available_not_ledger_and_expire(ledger: Ledger, clock: FrozenClock) -> None:
    ledger.place_hold(
        "hld_1", "10000001", D("60.00"), "CNY", expires_at=clock.now() + timedelta(hours=1)
    )
    balance = ledger.get_balance("10000001")
    assert (balance.available, balance.ledger) == (D("40.00000"), D("100.00000"))
    assert _fault(ledger.post_transfer, "tr_x", "10000001", "10000002", D("50"), "CNY").code == (
        "INSUFFICIENT_FUNDS"
    )
    assert ledger.transaction_status("tr_x").status == "REJECTED"
    clock.advance(hours=1)
    assert ledger.get_balance("10000001").available == D("100.00000")
    assert ledger.transaction_status("hld_1").status == "REVERSED"
    released, replayed = ledger.release_hold("hld_1")
    assert released.status == "EXPIRED" and not replayed
    fault = _fault(
        ledger.post_transfer, "tr_2", "10000001", "10000002", D("1"), "CNY", hold_reference="hld_1"
    )
    assert fault.code == "HOLD_EXPIRED"


def test_capture_takes_part_of_a_hold_and_releases_the_rest(ledger: Ledger) -> None:
    ledger.place_hold("hld_1", "10000001", D("60.00"), "CNY")
    ledger.post_transfer("tr_1", "10000001", "10000002", D("45.00"), "CNY", hold_reference="hld_1")
    balance = ledger.get_balance("10000001")
    assert (balance.available, balance.ledger) == (D("55.00000"), D("55.00000"))
    assert ledger.holds(reference="hld_1")[0]["status"] == "CAPTURED"
    assert _fault(ledger.release_hold, "hld_1").code == "HOLD_NOT_ACTIVE"


def test_daily_debit_limit_resets_the_next_day(ledger: Ledger, clock: FrozenClock) -> None:
    ledger.update_account("10000001", daily_debit_limit="50.00")
    ledger.post_transfer("tr_1", "10000001", "10000002", D("40.00"), "CNY")
    fault = _fault(ledger.post_transfer, "tr_2", "10000001", "10000002", D("20.00"), "CNY")
    assert fault.code == "LIMIT_EXCEEDED"
    clock.advance(days=1)
    ledger.post_transfer("tr_3", "10000001", "10000002", D("20.00"), "CNY")


def test_precision_currency_and_account_rules(ledger: Ledger) -> None:
    assert _fault(ledger.post_transfer, "t1", "10000001", "10000002", D("1.001"), "CNY").code == (
        "INVALID_AMOUNT"
    )
    assert _fault(ledger.post_transfer, "t2", "10000001", "10000003", D("1"), "CNY").code == (
        "CURRENCY_MISMATCH"
    )
    assert _fault(ledger.post_transfer, "t3", "10000001", "10000001", D("1"), "CNY").code == (
        "SAME_ACCOUNT"
    )
    missing = _fault(ledger.post_transfer, "t4", "10000001", "99999999", D("1"), "CNY")
    assert (missing.code, missing.field) == ("ACCOUNT_NOT_FOUND", "CreditAccount")
    ledger.update_account("10000002", status="DORMANT")
    assert _fault(ledger.post_transfer, "t5", "10000001", "10000002", D("1"), "CNY").code == (
        "ACCOUNT_INACTIVE"
    )
    ledger.update_account("10000002", status="ACTIVE", credit_allowed=False)
    assert _fault(ledger.post_transfer, "t6", "10000001", "10000002", D("1"), "CNY").code == (
        "CREDIT_NOT_ALLOWED"
    )
    assert ledger.get_balance("10000001").ledger == D("100.00000")  # nothing moved


def test_reversal_restores_balances_and_is_forced(ledger: Ledger) -> None:
    ledger.post_transfer("tr_1", "10000001", "10000002", D("30.00"), "CNY")
    ledger.post_transfer("tr_2", "10000002", "10000001", D("30.00"), "CNY")
    reversal, _ = ledger.reverse_transfer("rv_1", "tr_1")
    assert reversal.kind == "REVERSAL"
    assert ledger.get_balance("10000002").ledger == D("-30.00000")  # forced below zero
    assert ledger.transaction_status("tr_1").status == "REVERSED"
    assert ledger.reverse_transfer("rv_1", "tr_1")[1] is True
    assert _fault(ledger.reverse_transfer, "rv_2", "tr_1").code == "ALREADY_REVERSED"
    assert _fault(ledger.reverse_transfer, "rv_3", "tr_9").code == "TRANSACTION_NOT_FOUND"
    assert ledger.transaction_status("rv_3").rejection_code == "TRANSACTION_NOT_FOUND"


def test_pending_postings_reserve_funds_until_booked(ledger: Ledger) -> None:
    posting, _ = ledger.post_transfer("tr_1", "10000001", "10000002", D("30"), "CNY", pending=True)
    assert ledger.transaction_status("tr_1").status == "PENDING"
    assert ledger.get_balance("10000001").available == D("70.00000")
    assert ledger.get_balance("10000002").ledger == D(0)
    ledger.book_pending(posting.core_reference)
    assert ledger.transaction_status("tr_1").status == "BOOKED"
    assert ledger.get_balance("10000002").ledger == D("30.00000")


def test_a_rejected_pending_capture_gives_the_hold_back(ledger: Ledger) -> None:
    ledger.place_hold("hld_1", "10000001", D("40"), "CNY")
    posting, _ = ledger.post_transfer(
        "tr_1", "10000001", "10000002", D("40"), "CNY", hold_reference="hld_1", pending=True
    )
    ledger.reject_pending(posting.core_reference, "LIMIT_EXCEEDED")
    assert ledger.holds(reference="hld_1")[0]["status"] == "PLACED"
    assert ledger.get_balance("10000001").available == D("60.00000")
    status = ledger.transaction_status("tr_1")
    assert (status.status, status.rejection_code) == ("REJECTED", "LIMIT_EXCEEDED")


def test_statement_pages_and_tokens_are_bound_to_their_query(ledger: Ledger) -> None:
    for number in range(5):
        ledger.post_transfer(f"tr_{number}", "10000001", "10000002", D("1"), "CNY")
    day = ledger.clock.now().date()
    seen, token = [], None
    while True:
        entries, token = ledger.statement("10000001", day, day, page_size=2, page_token=token)
        seen += [e.external_reference for e in entries]
        if token is None:
            break
    assert seen == [f"tr_{n}" for n in range(5)]
    _, token = ledger.statement("10000001", day, day, page_size=2)
    assert token is not None
    assert _fault(ledger.statement, "10000002", day, day, page_token=token).code == (
        "INVALID_PAGE_TOKEN"
    )
    assert _fault(ledger.statement, "10000001", day, day, page_token="garbage!").code == (
        "INVALID_PAGE_TOKEN"
    )


def test_seed_is_idempotent_and_covers_the_documented_cases() -> None:
    book = Ledger(":memory:")
    assert seed(book) == len(DEMO_ACCOUNTS)
    assert seed(book) == 0
    kinds = {row["kind"] for row in book.accounts()}
    assert {"customer", "settlement", "clearing", "fee"} <= kinds
    statuses = {row["status"] for row in book.accounts(kind="customer")}
    assert {"ACTIVE", "DORMANT", "BLOCKED"} <= statuses
    assert {row["currency"] for row in book.accounts()} >= {"CNY", "USD", "KES"}


def test_a_file_ledger_survives_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "core.db")
    book = Ledger(path)
    book.open_account("10000001", name="A", currency="CNY", balance=D("5"))
    book.credit("10000001", D("2.50"))
    book.close()
    again = Ledger(path)
    assert again.get_balance("10000001").ledger == D("7.50000")
    assert len(again.postings(account="10000001")) == 1
