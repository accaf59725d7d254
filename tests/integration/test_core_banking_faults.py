"""Every core-banking operation against every fault the simulator injects, over a real loopback
socket (the session simulator of tests/conftest.py), as one matrix: OPERATIONS x FAULTS.

Each cell asserts the adapter's documented behaviour (docs/core-banking.md, "Retries and unknown
outcomes"; adapters/core_banking/soap.py):

* reads (GetAccount, GetBalance, GetTransactionStatus, GetStatement) are retried on
  `CoreBankingUnavailable` up to `read_attempts`, then raise it; a passing fault is retried to
  success; any other error is raised at once. Ping is a read sent once (a readiness probe);
* postings (PlaceHold, ReleaseHold, PostTransfer, ReverseTransfer) reach the core exactly once;
  whenever the core may have acted the error is `OutcomeUnknown`; GetTransactionStatus then tells
  what the ledger holds (one record if the core acted, none if not) without posting anything, and
  only then is the same request, under the same reference, sent again.

Requests are counted at the simulator: "retried" is what reached the core, not what the client
believes it sent. The `extensions` mode (bank elements in responses) is exercised for every
operation by tests/contract/test_core_banking_contract.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import pytest

from adapters.base import (
    CoreBankingError,
    CoreBankingRejected,
    CoreBankingUnavailable,
    OutcomeUnknown,
)
from adapters.core_banking import contract
from adapters.core_banking.simulator import CoreBankingSimulator
from adapters.core_banking.simulator.faults import MODES
from adapters.core_banking.soap import SoapCoreBanking
from gateway.domain.clock import OffsetClock
from gateway.domain.ids import new_id
from gateway.domain.money import Money
from tests.conftest import make_core_banking

AMOUNT = Money.parse("100.00", "CNY")
ATTEMPTS = 2  # read_attempts of the adapters below: not the default (3), so the setting counts
TIMEOUT = 0.15  # the impatient adapter's operation timeout (seconds)
STALL = 5.0  # a `timeout` fault stalls this long; the autouse reset wakes it after each test
LATENCY = 0.03  # per latency rule; two rules are injected and must add up


def cny(value: str) -> Money:
    return Money.parse(value, "CNY")


@pytest.fixture(scope="module")
def patient(core_simulator: CoreBankingSimulator) -> Iterator[SoapCoreBanking]:
    adapter: SoapCoreBanking = make_core_banking(core_simulator, read_attempts=ATTEMPTS)
    yield adapter
    adapter.close()


@pytest.fixture(scope="module")
def impatient(core_simulator: CoreBankingSimulator) -> Iterator[SoapCoreBanking]:
    """For `timeout` faults only: the simulator stalls far past this adapter's timeout."""
    adapter: SoapCoreBanking = make_core_banking(
        core_simulator, read_attempts=ATTEMPTS, timeout=TIMEOUT
    )
    yield adapter
    adapter.close()


# --- the operations -------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What one cell works on: a fresh customer (500.00 CNY), a partner, a reference."""

    simulator: CoreBankingSimulator
    customer: str
    partner: str
    reference: str
    original: str = ""  # ReverseTransfer: the booked transfer it reverses


def _no_setup(core: SoapCoreBanking, ctx: Ctx) -> None:
    return None


def _hold_placed(core: SoapCoreBanking, ctx: Ctx) -> None:
    core.place_hold(hold_reference=ctx.reference, account_number=ctx.customer, amount=AMOUNT)


def _transfer_booked(core: SoapCoreBanking, ctx: Ctx) -> None:
    ctx.original = new_id("tr")
    core.post_transfer(
        external_reference=ctx.original,
        debit_account=ctx.customer,
        credit_account=ctx.partner,
        amount=AMOUNT,
    )


def _holds(ctx: Ctx, status: str | None = None) -> int:
    rows = ctx.simulator.ledger.holds(account=ctx.customer)
    return sum(1 for row in rows if status is None or row["status"] == status)


def _postings(ctx: Ctx, kind: str) -> int:
    return sum(1 for row in ctx.simulator.postings(account=ctx.customer) if row["kind"] == kind)


def _statement(core: SoapCoreBanking, ctx: Ctx) -> Any:
    today = ctx.simulator.clock.now().date()
    return core.get_statement(account_number=ctx.customer, from_date=today, to_date=today)


def _check_account(result: Any, ctx: Ctx) -> None:
    assert (result.account_number, result.status) == (ctx.customer, "ACTIVE")


def _check_balance(result: Any, ctx: Ctx) -> None:
    assert (result.account_number, result.ledger) == (ctx.customer, cny("500.00"))


def _check_not_found(result: Any, ctx: Ctx) -> None:
    assert (result.external_reference, result.status) == (ctx.reference, "NOT_FOUND")


def _check_statement(result: Any, ctx: Ctx) -> None:
    assert result.account_number == ctx.customer and result.next_page_token is None


def _check_pong(result: Any, ctx: Ctx) -> None:
    assert result is None


def _check_hold(status: str) -> Callable[[Any, Ctx], None]:
    def check(result: Any, ctx: Ctx) -> None:
        assert (result.hold_reference, result.status, result.amount) == (
            ctx.reference,
            status,
            AMOUNT,
        )

    return check


def _check_booked(result: Any, ctx: Ctx) -> None:
    assert (result.external_reference, result.status) == (ctx.reference, "BOOKED")


Repeat = Literal["", "twice", "replayed", "refused"]


@dataclass(frozen=True)
class Operation:
    name: str
    kind: Literal["read", "posting"]
    call: Callable[[SoapCoreBanking, Ctx], Any]
    check: Callable[[Any, Ctx], None]  # asserts the normal answer
    prefix: str = "tr"
    setup: Callable[[SoapCoreBanking, Ctx], None] = _no_setup
    # Postings: what GetTransactionStatus(reference) says, the customer's available balance and
    # the number of ledger records this posting made, when the core acted or did not.
    status_if_acted: str = ""
    status_if_not: str = ""
    available_if_acted: str = ""
    available_if_not: str = ""
    records: Callable[[Ctx], int] = field(default=lambda ctx: 0)
    # A second identical request to a core that does not deduplicate.
    without_dedup: Repeat = ""

    def __str__(self) -> str:
        return self.name

    def start(self, core: SoapCoreBanking, simulator: CoreBankingSimulator) -> Ctx:
        ctx = Ctx(
            simulator,
            simulator.open_account(balance="500.00"),
            simulator.open_account(balance="0.00", kind="settlement"),
            new_id(self.prefix),
        )
        self.setup(core, ctx)
        return ctx

    def resolves_to(self, core: SoapCoreBanking, ctx: Ctx, *, acted: bool) -> None:
        """GetTransactionStatus, the ledger and the balance agree on whether the core acted."""
        status = core.get_transaction_status(ctx.reference)
        assert status.status == (self.status_if_acted if acted else self.status_if_not)
        if status.status != "NOT_FOUND":
            assert status.amount == AMOUNT
        assert self.records(ctx) == int(acted)
        available = self.available_if_acted if acted else self.available_if_not
        assert core.get_balance(ctx.customer).available == cny(available)


OPERATIONS = [
    Operation(
        "GetAccount", "read", lambda core, ctx: core.get_account(ctx.customer), _check_account
    ),
    Operation(
        "GetBalance", "read", lambda core, ctx: core.get_balance(ctx.customer), _check_balance
    ),
    Operation(
        "GetTransactionStatus",
        "read",
        lambda core, ctx: core.get_transaction_status(ctx.reference),
        _check_not_found,
    ),
    Operation("GetStatement", "read", _statement, _check_statement),
    Operation("Ping", "read", lambda core, ctx: core.ping(), _check_pong),
    Operation(
        "PlaceHold",
        "posting",
        lambda core, ctx: core.place_hold(
            hold_reference=ctx.reference, account_number=ctx.customer, amount=AMOUNT
        ),
        _check_hold("PLACED"),
        prefix="hld",
        status_if_acted="PENDING",  # a hold in force
        status_if_not="NOT_FOUND",
        available_if_acted="400.00",
        available_if_not="500.00",
        records=_holds,
        without_dedup="twice",
    ),
    Operation(
        "ReleaseHold",
        "posting",
        lambda core, ctx: core.release_hold(hold_reference=ctx.reference),
        _check_hold("RELEASED"),
        prefix="hld",
        setup=_hold_placed,
        status_if_acted="REVERSED",
        status_if_not="PENDING",
        available_if_acted="500.00",
        available_if_not="400.00",
        records=lambda ctx: _holds(ctx, "RELEASED"),
        without_dedup="replayed",  # releasing is idempotent by nature, dedup or not
    ),
    Operation(
        "PostTransfer",
        "posting",
        lambda core, ctx: core.post_transfer(
            external_reference=ctx.reference,
            debit_account=ctx.customer,
            credit_account=ctx.partner,
            amount=AMOUNT,
        ),
        _check_booked,
        status_if_acted="BOOKED",
        status_if_not="NOT_FOUND",
        available_if_acted="400.00",
        available_if_not="500.00",
        records=lambda ctx: _postings(ctx, "TRANSFER"),
        without_dedup="twice",
    ),
    Operation(
        "ReverseTransfer",
        "posting",
        lambda core, ctx: core.reverse_transfer(
            external_reference=ctx.reference, original_reference=ctx.original
        ),
        _check_booked,
        prefix="rf",
        setup=_transfer_booked,
        status_if_acted="BOOKED",
        status_if_not="NOT_FOUND",
        available_if_acted="500.00",
        available_if_not="400.00",
        records=lambda ctx: _postings(ctx, "REVERSAL"),
        without_dedup="refused",  # the original is reversed by then: ALREADY_REVERSED
    ),
]
READS = [op for op in OPERATIONS if op.kind == "read"]
POSTINGS = [op for op in OPERATIONS if op.kind == "posting"]


# --- the faults -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    id: str
    mode: str
    options: dict[str, Any]
    read_error: type[CoreBankingError]  # raised for reads, after ATTEMPTS if Unavailable
    posting_error: type[CoreBankingError]
    core_code: str
    acted: bool  # the simulator books a posting before failing
    code: str | None = None  # the partner-facing code, where the fault decides it
    postings_only: bool = False  # `process: false` changes nothing for a read

    def __str__(self) -> str:
        return self.id

    def inject(self, simulator: CoreBankingSimulator, operation: str, **extra: Any) -> Any:
        return simulator.inject(operation, self.mode, **self.options, **extra)


FAULTS = [
    Fault(
        "timeout",
        "timeout",
        {"seconds": STALL},
        CoreBankingUnavailable,
        OutcomeUnknown,
        "TIMEOUT",
        acted=True,
    ),
    Fault(
        "timeout_before_processing",
        "timeout",
        {"seconds": STALL, "process": False},
        CoreBankingUnavailable,
        OutcomeUnknown,
        "TIMEOUT",
        acted=False,
        postings_only=True,
    ),
    Fault(
        "drop",  # book, then lose the response
        "drop",
        {},
        CoreBankingUnavailable,
        OutcomeUnknown,
        "CONNECTION_LOST",
        acted=True,
    ),
    Fault(
        "drop_before_processing",
        "drop",
        {"process": False},
        CoreBankingUnavailable,
        OutcomeUnknown,
        "CONNECTION_LOST",
        acted=False,
        postings_only=True,
    ),
    Fault(
        "garbage",  # book, then answer half an envelope with HTTP 200
        "garbage",
        {},
        CoreBankingUnavailable,
        OutcomeUnknown,
        "HTTP_200",
        acted=True,
    ),
    Fault(
        "html_502",
        "html_502",
        {},
        CoreBankingUnavailable,
        OutcomeUnknown,
        "HTTP_502",
        acted=False,
    ),
    Fault(
        "html_429",  # busy: refused before processing, so a posting's outcome is known
        "html_502",
        {"status": 429},
        CoreBankingUnavailable,
        CoreBankingUnavailable,
        "HTTP_429",
        acted=False,
    ),
    Fault(
        "html_404",  # a wrong URL or a proxy refusing us: our integration, never retried
        "html_502",
        {"status": 404},
        CoreBankingError,
        CoreBankingError,
        "HTTP_404",
        acted=False,
        code="core_banking_integration_error",
    ),
    Fault(
        "unavailable",  # SYSTEM_UNAVAILABLE: SERVER, retryable, nothing done
        "unavailable",
        {},
        CoreBankingUnavailable,
        CoreBankingUnavailable,
        "SYSTEM_UNAVAILABLE",
        acted=False,
    ),
    Fault(
        "internal_error",  # SERVER, not retryable: a posting may or may not have happened
        "fault",
        {"code": "INTERNAL_ERROR"},
        CoreBankingError,
        OutcomeUnknown,
        "INTERNAL_ERROR",
        acted=False,
    ),
    Fault(
        "business_fault",  # CLIENT: a refusal, mapped like the ledger's own
        "fault",
        {"code": "ACCOUNT_INACTIVE"},
        CoreBankingRejected,
        CoreBankingRejected,
        "ACCOUNT_INACTIVE",
        acted=False,
        code="account_inactive",
    ),
]
RETRIED = [
    fault
    for fault in FAULTS
    if fault.read_error is CoreBankingUnavailable and not fault.postings_only
]


def _adapter(fault: Fault, patient: SoapCoreBanking, impatient: SoapCoreBanking) -> SoapCoreBanking:
    return impatient if fault.mode == "timeout" else patient


def _attempts(operation: Operation, error: type[CoreBankingError]) -> int:
    retried = operation.name in contract.READ_OPERATIONS - {"Ping"}
    return ATTEMPTS if retried and error is CoreBankingUnavailable else 1


def test_the_matrix_covers_every_operation_and_every_fault_mode() -> None:
    assert {op.name for op in READS} == contract.READ_OPERATIONS
    assert {op.name for op in POSTINGS} == contract.POSTING_OPERATIONS
    # latency, no_dedup and pending have their own tests below; extensions: see the docstring.
    covered = {fault.mode for fault in FAULTS} | {"latency", "no_dedup", "pending", "extensions"}
    assert covered == MODES


# --- a fault that lasts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "fault"),
    [
        pytest.param(op, fault, id=f"{op}-{fault}")
        for op in OPERATIONS
        for fault in FAULTS
        if op.kind == "posting" or not fault.postings_only
    ],
)
def test_a_lasting_fault(
    operation: Operation,
    fault: Fault,
    core_simulator: CoreBankingSimulator,
    patient: SoapCoreBanking,
    impatient: SoapCoreBanking,
) -> None:
    ctx = operation.start(patient, core_simulator)
    sent = core_simulator.request_count(operation.name)
    rule = fault.inject(core_simulator, operation.name)
    with pytest.raises(CoreBankingError) as caught:
        operation.call(_adapter(fault, patient, impatient), ctx)
    core_simulator.faults.remove(rule.id)

    error = caught.value
    expected = fault.posting_error if operation.kind == "posting" else fault.read_error
    assert type(error) is expected
    assert error.core_code == fault.core_code
    assert error.retryable is (expected is CoreBankingUnavailable)
    if fault.code is not None:
        assert error.code == fault.code
    assert core_simulator.request_count(operation.name) - sent == _attempts(operation, expected)
    if operation.kind == "read":
        return

    # Ask first: the status (and the ledger behind it) says whether the core acted; asking
    # posts nothing.
    operation.resolves_to(patient, ctx, acted=fault.acted)
    assert core_simulator.request_count(operation.name) - sent == 1
    # Only now, and under the SAME reference, is the request sent again: exactly one record.
    again = operation.call(patient, ctx)
    operation.check(again, ctx)
    assert again.replayed is fault.acted
    assert operation.records(ctx) == 1


# --- a fault that passes --------------------------------------------------------------------------


@pytest.mark.parametrize("fault", RETRIED, ids=str)
@pytest.mark.parametrize("operation", READS, ids=str)
def test_a_passing_fault_on_a_read(
    operation: Operation,
    fault: Fault,
    core_simulator: CoreBankingSimulator,
    patient: SoapCoreBanking,
    impatient: SoapCoreBanking,
) -> None:
    """Retried to success within `read_attempts`; Ping, a probe, reports the first failure."""
    ctx = operation.start(patient, core_simulator)
    adapter = _adapter(fault, patient, impatient)
    sent = core_simulator.request_count(operation.name)
    rule = fault.inject(core_simulator, operation.name, times=ATTEMPTS - 1)
    if operation.name == "Ping":
        with pytest.raises(CoreBankingUnavailable):
            operation.call(adapter, ctx)
        assert core_simulator.request_count(operation.name) - sent == 1
        operation.check(operation.call(adapter, ctx), ctx)  # the next probe finds it well
    else:
        operation.check(operation.call(adapter, ctx), ctx)
    assert rule.hits == ATTEMPTS - 1
    assert core_simulator.request_count(operation.name) - sent == ATTEMPTS


# --- latency, scheduled unavailability, flags -----------------------------------------------------


@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_added_latency_only_slows_the_call(
    operation: Operation, core_simulator: CoreBankingSimulator, patient: SoapCoreBanking
) -> None:
    ctx = operation.start(patient, core_simulator)
    sent = core_simulator.request_count(operation.name)
    rules = [core_simulator.inject(operation.name, "latency", seconds=LATENCY) for _ in range(2)]
    started = time.perf_counter()
    result = operation.call(patient, ctx)
    elapsed = time.perf_counter() - started
    operation.check(result, ctx)
    assert elapsed >= 2 * LATENCY  # latency rules add up; a lower bound only
    assert [rule.hits for rule in rules] == [1, 1]
    assert core_simulator.request_count(operation.name) - sent == 1
    if operation.kind == "posting":
        assert result.replayed is False and operation.records(ctx) == 1


@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_scheduled_unavailability(
    operation: Operation,
    core_simulator: CoreBankingSimulator,
    patient: SoapCoreBanking,
    restore_clock: OffsetClock,
) -> None:
    """A maintenance window on the simulator's clock: refused inside, served after."""
    ctx = operation.start(patient, core_simulator)
    now = restore_clock.now()
    core_simulator.inject(
        "*",
        "unavailable",
        active_from=now + timedelta(hours=1),
        active_until=now + timedelta(hours=2),
    )
    if operation.kind == "read":  # before the window (a posting would be done by then)
        operation.check(operation.call(patient, ctx), ctx)

    restore_clock.advance(hours=1, minutes=1)
    sent = core_simulator.request_count(operation.name)
    with pytest.raises(CoreBankingUnavailable) as caught:
        operation.call(patient, ctx)
    assert caught.value.core_code == "SYSTEM_UNAVAILABLE"
    assert core_simulator.request_count(operation.name) - sent == _attempts(
        operation, CoreBankingUnavailable
    )
    assert operation.records(ctx) == 0

    restore_clock.advance(hours=1)
    result = operation.call(patient, ctx)
    operation.check(result, ctx)
    if operation.kind == "posting":
        assert result.replayed is False and operation.records(ctx) == 1


@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_a_core_that_does_not_deduplicate(
    operation: Operation, core_simulator: CoreBankingSimulator, patient: SoapCoreBanking
) -> None:
    """The adapter sends what it is asked to, twice if asked twice: why postings are never
    re-sent blindly (tests/reliability/test_core_banking_outcomes.py resolves them instead)."""
    ctx = operation.start(patient, core_simulator)
    sent = core_simulator.request_count(operation.name)
    core_simulator.inject(operation.name, "no_dedup")
    first = operation.call(patient, ctx)
    operation.check(first, ctx)
    if operation.without_dedup == "refused":
        with pytest.raises(CoreBankingRejected) as caught:
            operation.call(patient, ctx)
        assert caught.value.core_code == "ALREADY_REVERSED"
    else:
        second = operation.call(patient, ctx)
        operation.check(second, ctx)
        if operation.kind == "posting":
            assert (first.replayed, second.replayed) == (
                False,
                operation.without_dedup == "replayed",
            )
    assert core_simulator.request_count(operation.name) - sent == 2
    if operation.kind == "posting":
        assert operation.records(ctx) == (2 if operation.without_dedup == "twice" else 1)


@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_pending_applies_to_transfers_only(
    operation: Operation, core_simulator: CoreBankingSimulator, patient: SoapCoreBanking
) -> None:
    ctx = operation.start(patient, core_simulator)
    if operation.name != "PostTransfer":
        with pytest.raises(ValueError, match="PostTransfer only"):
            core_simulator.inject(operation.name, "pending")
    core_simulator.inject("*", "pending")
    result = operation.call(patient, ctx)
    if operation.name != "PostTransfer":
        operation.check(result, ctx)
        return
    assert (result.status, result.replayed) == ("PENDING", False)
    assert patient.get_transaction_status(ctx.reference).status == "PENDING"
    assert patient.get_balance(ctx.customer).available == cny("400.00")  # reserved already
    core_simulator.ledger.book_pending(result.core_reference)
    assert patient.get_transaction_status(ctx.reference).status == "BOOKED"
    assert operation.records(ctx) == 1
