"""The zeep adapter against the simulator over a real loopback socket: every operation, every
business fault, WS-Security, correlation headers, logs and readiness. Every operation against
every injected failure is the matrix of test_core_banking_faults.py."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from adapters.base import (
    CoreBankingError,
    CoreBankingRejected,
    CoreBankingUnavailable,
)
from adapters.core_banking.simulator import CoreBankingSimulator
from adapters.core_banking.soap import SoapCoreBanking
from gateway.domain.ids import new_id
from gateway.domain.money import Money
from gateway.observability.context import accept_traceparent, request_id_var, trace_var
from tests.conftest import EnvelopeRecorder, make_core_banking


def cny(value: str) -> Money:
    return Money.parse(value, "CNY")


@pytest.fixture
def accounts(core_simulator):  # type: ignore[no-untyped-def]
    """A fresh customer (500.00 CNY) and settlement account per test."""
    return (
        core_simulator.open_account(balance="500.00", name="Zhou Test", mobile="+8613900000001"),
        core_simulator.open_account(balance="0.00", name="Settlement", kind="settlement"),
    )


def _rejected(call, *args, **kwargs) -> CoreBankingRejected:  # type: ignore[no-untyped-def]
    with pytest.raises(CoreBankingRejected) as caught:
        call(*args, **kwargs)
    return caught.value


# --- reads ----------------------------------------------------------------------------------------


def test_ping(core_banking) -> None:  # type: ignore[no-untyped-def]
    assert core_banking.ping() is None


def test_get_account_returns_the_registered_mobile(core_banking, accounts) -> None:  # type: ignore[no-untyped-def]
    account = core_banking.get_account(accounts[0])
    assert (account.account_number, account.holder_name, account.currency) == (
        accounts[0],
        "Zhou Test",
        "CNY",
    )
    assert (account.status, account.debit_allowed, account.credit_allowed) == (
        "ACTIVE",
        True,
        True,
    )
    assert account.registered_mobile == "+8613900000001"


def test_get_account_of_seeded_edge_cases(core_banking) -> None:  # type: ignore[no-untyped-def]
    assert core_banking.get_account("6222020000000003").status == "DORMANT"
    assert core_banking.get_account("6222020000000004").status == "BLOCKED"
    assert core_banking.get_account("4000100000000002").debit_allowed is False
    assert core_banking.get_account("4000100000000003").registered_mobile is None
    error = _rejected(core_banking.get_account, "1234567890")
    assert (error.core_code, error.code, error.field) == (
        "ACCOUNT_NOT_FOUND",
        "account_not_found",
        "AccountNumber",
    )


def test_get_balance_separates_available_from_ledger(core_banking, accounts) -> None:  # type: ignore[no-untyped-def]
    core_banking.place_hold(
        hold_reference=new_id("hld"), account_number=accounts[0], amount=cny("120.00")
    )
    balance = core_banking.get_balance(accounts[0])
    assert balance.available == cny("380.00")
    assert balance.ledger == cny("500.00")
    assert balance.as_of.tzinfo is not None


def test_balances_in_other_currencies(core_banking) -> None:  # type: ignore[no-untyped-def]
    assert core_banking.get_balance("0110000000000001").ledger.currency == "KES"
    assert core_banking.get_balance("4000100000000001").available.currency == "USD"


# --- holds ----------------------------------------------------------------------------------------


def test_place_hold_replay_and_mismatch(core_banking, core_simulator, accounts) -> None:  # type: ignore[no-untyped-def]
    reference = new_id("hld")
    expires = core_simulator.clock.now() + timedelta(hours=2)
    first = core_banking.place_hold(
        hold_reference=reference,
        account_number=accounts[0],
        amount=cny("100.00"),
        expires_at=expires,
    )
    assert (first.status, first.amount, first.replayed) == ("PLACED", cny("100.00"), False)
    assert abs(first.expires_at - expires) < timedelta(milliseconds=1)
    again = core_banking.place_hold(
        hold_reference=reference,
        account_number=accounts[0],
        amount=cny("100.00"),
        expires_at=expires,
    )
    assert again.replayed is True
    assert len(core_simulator.ledger.holds(reference=reference)) == 1
    error = _rejected(
        core_banking.place_hold,
        hold_reference=reference,
        account_number=accounts[0],
        amount=cny("101.00"),
    )
    assert (error.core_code, error.field) == ("DUPLICATE_REFERENCE_MISMATCH", "HoldReference")


@pytest.mark.parametrize(
    ("account", "amount", "code"),
    [
        ("6222020000000002", "500.00", "INSUFFICIENT_FUNDS"),
        ("6222020000000003", "1.00", "ACCOUNT_INACTIVE"),
        ("4000100000000002", "1.00", "DEBIT_NOT_ALLOWED"),
        ("4000100000000001", "1.00", "CURRENCY_MISMATCH"),
        ("1234567890", "1.00", "ACCOUNT_NOT_FOUND"),
    ],
)
def test_place_hold_refusals(core_banking, account: str, amount: str, code: str) -> None:  # type: ignore[no-untyped-def]
    reference = new_id("hld")
    error = _rejected(
        core_banking.place_hold,
        hold_reference=reference,
        account_number=account,
        amount=cny(amount),
    )
    assert error.core_code == code
    status = core_banking.get_transaction_status(reference)
    assert (status.status, status.rejection_code) == ("REJECTED", code)


def test_place_hold_in_the_past_is_refused(core_banking, core_simulator, accounts) -> None:  # type: ignore[no-untyped-def]
    error = _rejected(
        core_banking.place_hold,
        hold_reference=new_id("hld"),
        account_number=accounts[0],
        amount=cny("1.00"),
        expires_at=core_simulator.clock.now() - timedelta(minutes=1),
    )
    assert (error.core_code, error.field) == ("INVALID_EXPIRY", "ExpiresAt")


def test_release_hold(core_banking, accounts) -> None:  # type: ignore[no-untyped-def]
    reference = new_id("hld")
    core_banking.place_hold(
        hold_reference=reference, account_number=accounts[0], amount=cny("200.00")
    )
    released = core_banking.release_hold(hold_reference=reference)
    assert (released.status, released.replayed) == ("RELEASED", False)
    assert core_banking.get_balance(accounts[0]).available == cny("500.00")
    assert core_banking.release_hold(hold_reference=reference).replayed is True
    assert core_banking.get_transaction_status(reference).status == "REVERSED"
    assert _rejected(core_banking.release_hold, hold_reference=new_id("hld")).core_code == (
        "HOLD_NOT_FOUND"
    )


def test_an_expired_hold_releases_as_expired(core_banking, core_simulator, accounts, clock) -> None:  # type: ignore[no-untyped-def]
    reference = new_id("hld")
    core_banking.place_hold(
        hold_reference=reference,
        account_number=accounts[0],
        amount=cny("50.00"),
        expires_at=clock.now() + timedelta(minutes=5),
    )
    clock.advance(minutes=6)
    try:
        assert core_banking.get_balance(accounts[0]).available == cny("500.00")
        assert core_banking.release_hold(hold_reference=reference).status == "EXPIRED"
        error = _rejected(
            core_banking.post_transfer,
            external_reference=new_id("tr"),
            debit_account=accounts[0],
            credit_account=accounts[1],
            amount=cny("10.00"),
            hold_reference=reference,
        )
        assert error.core_code == "HOLD_EXPIRED"
    finally:
        clock.advance(minutes=-6)


# --- transfers ------------------------------------------------------------------------------------


def test_post_transfer_books_once_and_replays(core_banking, core_simulator, accounts) -> None:  # type: ignore[no-untyped-def]
    reference = new_id("tr")
    booked = core_banking.post_transfer(
        external_reference=reference,
        debit_account=accounts[0],
        credit_account=accounts[1],
        amount=cny("123.45"),
        description="Top-up to wallet",
    )
    assert (booked.external_reference, booked.status, booked.replayed) == (
        reference,
        "BOOKED",
        False,
    )
    assert booked.booking_date == core_simulator.clock.now().date()
    assert core_banking.get_balance(accounts[0]).ledger == cny("376.55")
    assert core_banking.get_balance(accounts[1]).ledger == cny("123.45")
    replay = core_banking.post_transfer(
        external_reference=reference,
        debit_account=accounts[0],
        credit_account=accounts[1],
        amount=cny("123.45"),
        description="Top-up to wallet",
    )
    assert replay.replayed is True and replay.core_reference == booked.core_reference
    assert core_simulator.posting_count(reference) == 1
    error = _rejected(
        core_banking.post_transfer,
        external_reference=reference,
        debit_account=accounts[0],
        credit_account=accounts[1],
        amount=cny("1.00"),
    )
    assert error.core_code == "DUPLICATE_REFERENCE_MISMATCH"
    status = core_banking.get_transaction_status(reference)
    assert (status.status, status.core_reference, status.amount) == (
        "BOOKED",
        booked.core_reference,
        cny("123.45"),
    )
    assert status.booked_at is not None


@pytest.mark.parametrize(
    ("debit", "credit", "amount", "code", "field"),
    [
        ("6222020000000002", "9000000000000101", "120.01", "INSUFFICIENT_FUNDS", "Amount"),
        ("6222020000000005", "9000000000000101", "1000.01", "LIMIT_EXCEEDED", "Amount"),
        ("6222020000000003", "9000000000000101", "1.00", "ACCOUNT_INACTIVE", "DebitAccount"),
        ("6222020000000004", "9000000000000101", "1.00", "ACCOUNT_INACTIVE", "DebitAccount"),
        ("9000000000000101", "6222020000000006", "1.00", "ACCOUNT_INACTIVE", "CreditAccount"),
        ("4000100000000002", "9000000000000102", "1.00", "DEBIT_NOT_ALLOWED", "DebitAccount"),
        ("6222020000000001", "9000000000000102", "1.00", "CURRENCY_MISMATCH", "Amount"),
        ("6222020000000001", "6222020000000001", "1.00", "SAME_ACCOUNT", "CreditAccount"),
        ("6222020000000001", "7000000000000000", "1.00", "ACCOUNT_NOT_FOUND", "CreditAccount"),
    ],
)
def test_post_transfer_refusals(core_banking, debit, credit, amount, code, field) -> None:  # type: ignore[no-untyped-def]
    reference = new_id("tr")
    error = _rejected(
        core_banking.post_transfer,
        external_reference=reference,
        debit_account=debit,
        credit_account=credit,
        amount=cny(amount),
    )
    assert (error.core_code, error.field, error.category) == (code, field, "CLIENT")
    assert error.status == 422 and error.retryable is False
    assert core_banking.get_transaction_status(reference).status == "REJECTED"


def test_credit_not_allowed(core_banking, core_simulator, accounts) -> None:  # type: ignore[no-untyped-def]
    core_simulator.ledger.update_account(accounts[1], credit_allowed=False)
    error = _rejected(
        core_banking.post_transfer,
        external_reference=new_id("tr"),
        debit_account=accounts[0],
        credit_account=accounts[1],
        amount=cny("1.00"),
    )
    assert error.core_code == "CREDIT_NOT_ALLOWED"


def test_capture_a_hold_partially_releases_the_rest(core_banking, core_simulator, accounts) -> None:  # type: ignore[no-untyped-def]
    hold = new_id("hld")
    core_banking.place_hold(hold_reference=hold, account_number=accounts[0], amount=cny("300.00"))
    captured = core_banking.post_transfer(
        external_reference=new_id("tr"),
        debit_account=accounts[0],
        credit_account=accounts[1],
        amount=cny("250.00"),
        hold_reference=hold,
    )
    assert captured.status == "BOOKED"
    balance = core_banking.get_balance(accounts[0])
    assert (balance.available, balance.ledger) == (cny("250.00"), cny("250.00"))
    assert core_simulator.ledger.holds(reference=hold)[0]["status"] == "CAPTURED"
    assert _rejected(core_banking.release_hold, hold_reference=hold).core_code == "HOLD_NOT_ACTIVE"


def test_capture_refusals(core_banking, core_simulator, accounts) -> None:  # type: ignore[no-untyped-def]
    hold = new_id("hld")
    core_banking.place_hold(hold_reference=hold, account_number=accounts[0], amount=cny("100.00"))
    other = core_simulator.open_account(balance="100.00")

    def capture(amount: str, debit: str = accounts[0], reference: str = hold) -> str:
        return _rejected(
            core_banking.post_transfer,
            external_reference=new_id("tr"),
            debit_account=debit,
            credit_account=accounts[1],
            amount=cny(amount),
            hold_reference=reference,
        ).core_code

    assert capture("100.01") == "HOLD_AMOUNT_EXCEEDED"
    assert capture("1.00", debit=other) == "HOLD_ACCOUNT_MISMATCH"
    assert capture("1.00", reference=new_id("hld")) == "HOLD_NOT_FOUND"


def test_reverse_transfer(core_banking, accounts) -> None:  # type: ignore[no-untyped-def]
    original = new_id("tr")
    core_banking.post_transfer(
        external_reference=original,
        debit_account=accounts[0],
        credit_account=accounts[1],
        amount=cny("80.00"),
    )
    reversal = new_id("rf")
    reversed_ = core_banking.reverse_transfer(
        external_reference=reversal, original_reference=original, reason="customer refund"
    )
    assert (reversed_.status, reversed_.replayed) == ("BOOKED", False)
    assert core_banking.get_balance(accounts[0]).ledger == cny("500.00")
    assert core_banking.get_transaction_status(original).status == "REVERSED"
    assert core_banking.get_transaction_status(reversal).status == "BOOKED"
    assert (
        core_banking.reverse_transfer(
            external_reference=reversal, original_reference=original
        ).replayed
        is True
    )
    assert (
        _rejected(
            core_banking.reverse_transfer,
            external_reference=new_id("rf"),
            original_reference=original,
        ).core_code
        == "ALREADY_REVERSED"
    )
    assert (
        _rejected(
            core_banking.reverse_transfer,
            external_reference=new_id("rf"),
            original_reference=new_id("tr"),
        ).core_code
        == "TRANSACTION_NOT_FOUND"
    )


def test_transaction_status_not_found_is_an_answer(core_banking) -> None:  # type: ignore[no-untyped-def]
    status = core_banking.get_transaction_status(new_id("tr"))
    assert (status.status, status.core_reference, status.amount) == ("NOT_FOUND", None, None)


# --- statements -----------------------------------------------------------------------------------


def test_a_period_without_entries_is_an_empty_page(core_banking, core_simulator, accounts) -> None:  # type: ignore[no-untyped-def]
    long_ago = core_simulator.clock.now().date() - timedelta(days=400)
    page = core_banking.get_statement(
        account_number=accounts[0], from_date=long_ago, to_date=long_ago + timedelta(days=1)
    )
    assert page.entries == []
    assert page.next_page_token is None


def test_statement_pages_through_camt053_entries(core_banking, core_simulator, accounts) -> None:  # type: ignore[no-untyped-def]
    references = [new_id("tr") for _ in range(5)]
    for reference in references:
        core_banking.post_transfer(
            external_reference=reference,
            debit_account=accounts[0],
            credit_account=accounts[1],
            amount=cny("1.00"),
            description=f"payment {reference}",
        )
    today = core_simulator.clock.now().date()
    seen, token, pages = [], None, 0
    while True:
        page = core_banking.get_statement(
            account_number=accounts[0],
            from_date=today - timedelta(days=1),
            to_date=today,
            page_size=2,
            page_token=token,
        )
        pages += 1
        seen += page.entries
        token = page.next_page_token
        if token is None:
            break
    assert pages == 3
    assert [entry.external_reference for entry in seen] == references
    first = seen[0]
    assert (first.credit_debit, first.status, first.amount) == ("DBIT", "BOOK", cny("1.00"))
    assert first.booking_date == today and first.description == f"payment {references[0]}"
    assert first.core_reference == core_banking.get_transaction_status(references[0]).core_reference
    assert len({entry.entry_reference for entry in seen}) == 5
    credits = core_banking.get_statement(account_number=accounts[1], from_date=today, to_date=today)
    assert {entry.credit_debit for entry in credits.entries} == {"CRDT"}
    error = _rejected(
        core_banking.get_statement,
        account_number=accounts[1],
        from_date=today,
        to_date=today,
        page_token=core_banking.get_statement(
            account_number=accounts[0], from_date=today, to_date=today, page_size=1
        ).next_page_token,
    )
    assert error.core_code == "INVALID_PAGE_TOKEN"


# --- failures before anything reaches the core ---------------------------------------------------
# Every operation against every fault the simulator injects: tests/integration/
# test_core_banking_faults.py.


def test_an_unreachable_core_is_unavailable_for_reads_and_postings(core_simulator) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        core = SoapCoreBanking(
            f"http://127.0.0.1:{port}/core-banking", read_attempts=2, retry_backoff=0.01
        )
        with pytest.raises(CoreBankingUnavailable) as read:
            core.get_balance("6222020000000001")
        assert read.value.core_code == "CONNECT_FAILED"
        with pytest.raises(CoreBankingUnavailable):  # never sent, so nothing is unknown
            core.post_transfer(
                external_reference=new_id("tr"),
                debit_account="6222020000000001",
                credit_account="9000000000000101",
                amount=cny("1.00"),
            )


def test_facets_are_checked_before_anything_is_sent(core_banking, core_simulator) -> None:  # type: ignore[no-untyped-def]
    before = core_simulator.request_count("PostTransfer")
    error = _rejected(
        core_banking.post_transfer,
        external_reference="x" * 36,
        debit_account="6222020000000001",
        credit_account="9000000000000101",
        amount=cny("1.00"),
    )
    assert (error.field, error.code) == ("ExternalReference", "core_banking_invalid_request")
    assert core_simulator.request_count("PostTransfer") == before


# --- WS-Security ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secured_core():  # type: ignore[no-untyped-def]
    simulator = CoreBankingSimulator(
        username="gateway", password="core-pass", validate_responses=True
    )
    server = simulator.serve()
    yield simulator
    server.shutdown()


@pytest.mark.parametrize("digest", [False, True])
def test_ws_security_username_token(secured_core, digest: bool) -> None:  # type: ignore[no-untyped-def]
    core = make_core_banking(
        secured_core, username="gateway", password="core-pass", password_digest=digest
    )
    core.ping()
    assert core.get_account("6222020000000001").holder_name == "Li Wei"


@pytest.mark.parametrize("credentials", [{}, {"username": "gateway", "password": "wrong"}])
def test_ws_security_refusals_are_integration_errors(secured_core, credentials) -> None:  # type: ignore[no-untyped-def]
    core = make_core_banking(secured_core, **credentials)
    with pytest.raises(CoreBankingError) as caught:
        core.get_account("6222020000000001")
    assert caught.value.core_code == "AUTHENTICATION_FAILED"
    assert caught.value.code == "core_banking_integration_error" and caught.value.status == 502


# --- concurrency, correlation, logs, readiness ----------------------------------------------------


def test_one_adapter_serves_many_threads_and_the_ledger_stays_exact(
    core_banking: Any, core_simulator: Any
) -> None:
    customer = core_simulator.open_account(balance="100.00")
    partner = core_simulator.open_account(balance="0.00")

    def pay(_: int) -> str:
        try:
            core_banking.post_transfer(
                external_reference=new_id("tr"),
                debit_account=customer,
                credit_account=partner,
                amount=cny("7.00"),
            )
        except CoreBankingRejected as exc:
            return exc.core_code
        return "BOOKED"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(pay, range(20)))
    assert outcomes.count("BOOKED") == 14  # 14 x 7.00 = 98.00 <= 100.00
    assert outcomes.count("INSUFFICIENT_FUNDS") == 6
    assert core_banking.get_balance(customer).ledger == cny("2.00")
    assert core_banking.get_balance(partner).ledger == cny("98.00")


def test_calls_carry_trace_context_and_request_id(core_simulator) -> None:  # type: ignore[no-untyped-def]
    recorder = EnvelopeRecorder()
    core = make_core_banking(core_simulator, plugins=[recorder])
    trace = accept_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    trace_token, request_token = trace_var.set(trace), request_id_var.set("req_core_test")
    try:
        core.ping()
    finally:
        trace_var.reset(trace_token)
        request_id_var.reset(request_token)
    headers = recorder.sent[-1][2]
    assert headers["X-Request-Id"] == "req_core_test"
    assert headers["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    header = recorder.sent[-1][1].find(".//{urn:wallet-gateway:core-banking:v1}SourceSystem")
    assert header.text == "GATEWAY-TESTS"


def test_logs_name_the_operation_and_mask_account_numbers(
    app: Any, core_banking: Any, accounts: tuple[str, str], captured_logs: Any
) -> None:
    core_banking.post_transfer(
        external_reference=new_id("tr"),
        debit_account=accounts[0],
        credit_account=accounts[1],
        amount=cny("3.00"),
    )
    lines = [json.loads(line) for line in captured_logs().splitlines()]
    calls = [line for line in lines if line["event"] == "core_banking_call"]
    assert calls and calls[-1]["operation"] == "PostTransfer" and calls[-1]["outcome"] == "ok"
    assert isinstance(calls[-1]["duration_ms"], float)
    envelopes = [line for line in lines if line["event"] == "core_banking_envelope_out"]
    assert envelopes, "DEBUG logs the (masked) envelope"
    text = captured_logs()
    assert accounts[0] not in text and accounts[1] not in text
    assert "****" + accounts[0][-4:] in text


def test_readiness_includes_core_banking(client, core_simulator) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/health/ready").json()["checks"]["core_banking"] == "ok"
    core_simulator.inject("Ping", "unavailable")
    failing = client.get("/health/ready")
    assert failing.status_code == 503
    assert failing.json()["checks"]["core_banking"] == "unreachable"


def test_readiness_reports_an_integration_failure(client, core_simulator) -> None:  # type: ignore[no-untyped-def]
    core_simulator.inject("Ping", "fault", code="AUTHENTICATION_FAILED")
    assert client.get("/health/ready").json()["checks"]["core_banking"] == (
        "failing: AUTHENTICATION_FAILED"
    )


def test_metrics_count_core_calls_by_outcome(client, core_banking, accounts) -> None:  # type: ignore[no-untyped-def]
    _rejected(core_banking.get_account, "1234567890")
    text = client.get("/metrics").text
    assert 'gateway_core_banking_calls_total{operation="GetAccount",outcome="rejected"}' in text
    assert "gateway_core_banking_call_duration_seconds_bucket" in text


def test_amounts_keep_their_exact_value_end_to_end(core_banking, core_simulator) -> None:  # type: ignore[no-untyped-def]
    kwd = core_simulator.open_account(currency="KWD", balance="10.125")
    assert core_banking.get_balance(kwd).ledger == Money.parse("10.125", "KWD")
    assert core_simulator.balance(kwd).ledger == Decimal("10.125")
