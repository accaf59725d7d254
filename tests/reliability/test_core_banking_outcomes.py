"""Money is never moved twice: postings whose answer is lost are reported as unknown, resolved
with GetTransactionStatus, and never re-sent by the adapter; reads are retried.

Each posting against each lost-answer fault (timeout, dropped or garbled response, before or
after booking, including ReverseTransfer), and reads retried or not per fault, are the matrix
of tests/integration/test_core_banking_faults.py. Here: the recoveries that combine faults.

Requests are counted at the simulator, so "not retried" is what reached the core, not what the
client believes it sent.
"""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import OutcomeUnknown
from gateway.domain.ids import new_id
from gateway.domain.money import Money

AMOUNT = Money.parse("25.00", "CNY")


@pytest.fixture
def accounts(core_simulator: Any) -> tuple[str, str]:
    return core_simulator.open_account(balance="100.00"), core_simulator.open_account(balance="0")


def test_resolving_by_status_protects_against_cores_that_do_not_deduplicate(
    core_banking: Any, core_simulator: Any, accounts: tuple[str, str]
) -> None:
    reference = new_id("tr")
    sent = core_simulator.request_count("PostTransfer")
    core_simulator.inject("PostTransfer", "no_dedup")
    core_simulator.inject("PostTransfer", "drop", times=1)
    with pytest.raises(OutcomeUnknown):
        core_banking.post_transfer(
            external_reference=reference,
            debit_account=accounts[0],
            credit_account=accounts[1],
            amount=AMOUNT,
        )
    # The rule: ask first. A blind re-post here would book a second 25.00.
    assert core_banking.get_transaction_status(reference).status == "BOOKED"
    assert core_simulator.request_count("PostTransfer") - sent == 1
    assert core_simulator.posting_count(reference) == 1
    assert core_banking.get_balance(accounts[0]).ledger == Money.parse("75.00", "CNY")


def test_an_unknown_hold_is_resolved_by_status_and_voided_by_release(
    core_banking: Any, core_simulator: Any, accounts: tuple[str, str]
) -> None:
    reference = new_id("hld")
    core_simulator.inject("PlaceHold", "drop", times=1)
    with pytest.raises(OutcomeUnknown):
        core_banking.place_hold(hold_reference=reference, account_number=accounts[0], amount=AMOUNT)
    assert core_banking.get_transaction_status(reference).status == "PENDING"  # hold in force
    assert core_banking.release_hold(hold_reference=reference).status == "RELEASED"
    assert core_banking.get_transaction_status(reference).status == "REVERSED"
    assert core_banking.get_balance(accounts[0]).available == Money.parse("100.00", "CNY")
