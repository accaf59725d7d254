"""Money is never moved twice: postings whose answer is lost are reported as unknown, resolved
with GetTransactionStatus, and never re-sent by the adapter; reads are retried.

Requests are counted at the simulator, so "not retried" is what reached the core, not what the
client believes it sent.
"""

from __future__ import annotations

import pytest

from adapters.base import CoreBankingUnavailable, OutcomeUnknown
from gateway.domain.ids import new_id
from gateway.domain.money import Money
from tests.conftest import make_core_banking

AMOUNT = Money.parse("25.00", "CNY")


@pytest.fixture
def accounts(core_simulator):  # type: ignore[no-untyped-def]
    return core_simulator.open_account(balance="100.00"), core_simulator.open_account(balance="0")


@pytest.fixture
def impatient(core_simulator):  # type: ignore[no-untyped-def]
    """The real adapter with a short operation timeout (the simulator stalls past it)."""
    adapter = make_core_banking(core_simulator, timeout=0.4)
    yield adapter
    adapter.close()


def _transfer(core, accounts, reference):  # type: ignore[no-untyped-def]
    return core.post_transfer(
        external_reference=reference,
        debit_account=accounts[0],
        credit_account=accounts[1],
        amount=AMOUNT,
    )


def test_a_dropped_response_is_unknown_then_resolved_to_booked_with_one_posting(
    core_banking, core_simulator, accounts
) -> None:  # type: ignore[no-untyped-def]
    reference = new_id("tr")
    sent_before = core_simulator.request_count("PostTransfer")
    core_simulator.inject("PostTransfer", "drop", times=1)

    with pytest.raises(OutcomeUnknown) as caught:
        _transfer(core_banking, accounts, reference)
    assert caught.value.status == 504 and caught.value.retryable is False
    assert core_simulator.request_count("PostTransfer") - sent_before == 1  # not retried

    status = core_banking.get_transaction_status(reference)
    assert status.status == "BOOKED" and status.amount == AMOUNT
    assert core_simulator.posting_count(reference) == 1
    assert core_banking.get_balance(accounts[0]).ledger == Money.parse("75.00", "CNY")


def test_a_timeout_is_unknown_then_resolved_to_booked_with_one_posting(
    impatient, core_simulator, accounts
) -> None:  # type: ignore[no-untyped-def]
    reference = new_id("tr")
    sent_before = core_simulator.request_count("PostTransfer")
    core_simulator.inject("PostTransfer", "timeout", seconds=30, times=1)

    with pytest.raises(OutcomeUnknown) as caught:
        _transfer(impatient, accounts, reference)
    assert caught.value.core_code == "TIMEOUT"
    assert core_simulator.request_count("PostTransfer") - sent_before == 1

    assert impatient.get_transaction_status(reference).status == "BOOKED"
    assert core_simulator.posting_count(reference) == 1


def test_a_timeout_before_booking_resolves_to_not_found_and_the_same_reference_is_safe(
    impatient, core_simulator, accounts
) -> None:  # type: ignore[no-untyped-def]
    reference = new_id("tr")
    core_simulator.inject("PostTransfer", "timeout", seconds=30, process=False, times=1)
    with pytest.raises(OutcomeUnknown):
        _transfer(impatient, accounts, reference)
    assert impatient.get_transaction_status(reference).status == "NOT_FOUND"
    # Only now, and under the SAME reference, may the caller post again.
    assert _transfer(impatient, accounts, reference).status == "BOOKED"
    assert core_simulator.posting_count(reference) == 1


def test_a_garbled_answer_is_unknown_too(core_banking, core_simulator, accounts) -> None:  # type: ignore[no-untyped-def]
    reference = new_id("tr")
    core_simulator.inject("PostTransfer", "garbage", times=1)
    with pytest.raises(OutcomeUnknown):
        _transfer(core_banking, accounts, reference)
    assert core_banking.get_transaction_status(reference).status == "BOOKED"
    assert core_simulator.posting_count(reference) == 1


def test_resolving_by_status_protects_against_cores_that_do_not_deduplicate(
    core_banking, core_simulator, accounts
) -> None:  # type: ignore[no-untyped-def]
    reference = new_id("tr")
    core_simulator.inject("PostTransfer", "no_dedup")
    core_simulator.inject("PostTransfer", "drop", times=1)
    with pytest.raises(OutcomeUnknown):
        _transfer(core_banking, accounts, reference)
    # The rule: ask first. A blind re-post here would book a second 25.00.
    assert core_banking.get_transaction_status(reference).status == "BOOKED"
    assert core_simulator.posting_count(reference) == 1
    assert core_banking.get_balance(accounts[0]).ledger == Money.parse("75.00", "CNY")


@pytest.mark.parametrize("mode", ["html_502", "drop", "garbage"])
def test_postings_are_never_retried_by_the_adapter(
    core_banking, core_simulator, accounts, mode
) -> None:  # type: ignore[no-untyped-def]
    before = {op: core_simulator.request_count(op) for op in ("PostTransfer", "PlaceHold")}
    core_simulator.inject("*", mode, times=2)
    with pytest.raises(OutcomeUnknown):
        _transfer(core_banking, accounts, new_id("tr"))
    with pytest.raises(OutcomeUnknown):
        core_banking.place_hold(
            hold_reference=new_id("hld"), account_number=accounts[0], amount=AMOUNT
        )
    after = {op: core_simulator.request_count(op) for op in before}
    assert {op: after[op] - before[op] for op in before} == {"PostTransfer": 1, "PlaceHold": 1}


def test_a_core_that_says_it_is_unavailable_booked_nothing(
    core_banking, core_simulator, accounts
) -> None:  # type: ignore[no-untyped-def]
    reference = new_id("tr")
    before = core_simulator.request_count("PostTransfer")
    core_simulator.inject("PostTransfer", "unavailable", times=1)
    with pytest.raises(CoreBankingUnavailable):
        _transfer(core_banking, accounts, reference)
    assert core_simulator.request_count("PostTransfer") - before == 1
    assert core_banking.get_transaction_status(reference).status == "NOT_FOUND"


@pytest.mark.parametrize("mode", ["html_502", "drop", "garbage", "unavailable"])
def test_reads_are_retried_with_backoff(core_banking, core_simulator, accounts, mode) -> None:  # type: ignore[no-untyped-def]
    before = core_simulator.request_count("GetTransactionStatus")
    core_simulator.inject("GetTransactionStatus", mode, times=2)
    assert core_banking.get_transaction_status(new_id("tr")).status == "NOT_FOUND"
    assert core_simulator.request_count("GetTransactionStatus") - before == 3


def test_reads_give_up_after_the_configured_attempts(core_simulator, accounts) -> None:  # type: ignore[no-untyped-def]
    core = make_core_banking(core_simulator, read_attempts=4)
    before = core_simulator.request_count("GetAccount")
    core_simulator.inject("GetAccount", "html_502")
    with pytest.raises(CoreBankingUnavailable) as caught:
        core.get_account(accounts[0])
    assert caught.value.core_code == "HTTP_502"
    assert core_simulator.request_count("GetAccount") - before == 4


def test_an_unknown_hold_is_resolved_by_status_and_voided_by_release(
    core_banking, core_simulator, accounts
) -> None:  # type: ignore[no-untyped-def]
    reference = new_id("hld")
    core_simulator.inject("PlaceHold", "drop", times=1)
    with pytest.raises(OutcomeUnknown):
        core_banking.place_hold(hold_reference=reference, account_number=accounts[0], amount=AMOUNT)
    assert core_banking.get_transaction_status(reference).status == "PENDING"  # hold in force
    assert core_banking.release_hold(hold_reference=reference).status == "RELEASED"
    assert core_banking.get_transaction_status(reference).status == "REVERSED"
    assert core_banking.get_balance(accounts[0]).available == Money.parse("100.00", "CNY")
