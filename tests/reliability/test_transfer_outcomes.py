"""Transfers whose core outcome is lost, late or never recorded end exactly right, once.

The simulator books then drops the answer, or books then stalls past the adapter's timeout, or
never books; a process "dies" between committing and calling the core. In every case the
recovery worker asks GetTransactionStatus and the money moves exactly once or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import make_core_banking
from tests.flows import get_transfer, post, post_transfer


@pytest.fixture(scope="module")
def impatient(settings, clock, core_simulator) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A second gateway on the same database whose core adapter times out after 0.4 s."""
    from gateway.app import create_app
    from gateway.container import build_container

    adapter = make_core_banking(core_simulator, timeout=0.4)
    gateway = build_container(settings, clock=clock, core_banking=adapter)
    app = create_app(container=gateway)
    with app.test_client() as test_client:
        yield test_client
    gateway.close()


def _recover(container, clock, seconds: float = 0) -> None:  # type: ignore[no-untyped-def]
    clock.advance(seconds=seconds)
    try:
        container.recovery.run()
    finally:
        clock.advance(seconds=-seconds)


def test_book_then_drop_ends_succeeded_with_one_posting(
    client, container, core, core_simulator, funded, clock
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    core_simulator.inject("PostTransfer", "drop", times=1)
    transfer = post_transfer(client, s, "100.00").json()
    assert transfer["status"] == "unknown"
    assert core.postings(transfer["id"]) == 1  # the core did book it
    _recover(container, clock, seconds=2)
    after = get_transfer(client, s, transfer["id"])
    assert after["status"] == "succeeded"
    assert [h["to"] for h in after["history"]][-2:] == ["unknown", "succeeded"]
    assert core.postings(transfer["id"]) == 1
    assert core.available(s.account) == "9900.00"
    assert core_simulator.request_count("PostTransfer") >= 1


def test_a_timeout_ends_succeeded_with_one_posting(
    client, impatient, container, core, core_simulator, funded, clock
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    core_simulator.inject("PostTransfer", "timeout", seconds=30, times=1)
    before = core_simulator.request_count("PostTransfer")
    body = {
        "link_id": s.link["id"],
        "direction": "debit",
        "amount": {"value": "100.00", "currency": "CNY"},
    }
    response = impatient.post(
        "/v1/transfers", json=body, headers={**s.partner.auth, "Idempotency-Key": "timeout-1"}
    )
    transfer = response.json()
    assert transfer["status"] == "unknown"
    core_simulator.reset_faults()  # let the stalled request finish
    _recover(container, clock, seconds=2)
    assert get_transfer(client, s, transfer["id"])["status"] == "succeeded"
    assert core.postings(transfer["id"]) == 1
    assert core_simulator.request_count("PostTransfer") - before == 1  # never posted again
    assert core.available(s.account) == "9900.00"


def test_never_booked_fails_only_after_the_safe_window(
    client, impatient, container, core, core_simulator, funded, clock
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    core_simulator.inject("PostTransfer", "timeout", seconds=30, process=False, times=1)
    body = {
        "link_id": s.link["id"],
        "direction": "debit",
        "amount": {"value": "100.00", "currency": "CNY"},
    }
    transfer = impatient.post(
        "/v1/transfers", json=body, headers={**s.partner.auth, "Idempotency-Key": "timeout-2"}
    ).json()
    core_simulator.reset_faults()
    _recover(container, clock, seconds=5)  # NOT_FOUND, but too early to conclude
    assert get_transfer(client, s, transfer["id"])["status"] == "unknown"
    window = container.settings.recovery_not_found_after_seconds
    _recover(container, clock, seconds=window + 60)
    s.partner.renew()
    after = get_transfer(client, s, transfer["id"])
    assert after["status"] == "failed"
    assert after["failure"]["code"] == "not_booked"
    assert core.postings(transfer["id"]) == 0
    assert core.available(s.account) == "10000.00"


def test_a_process_that_died_before_calling_the_core(
    client, container, core, core_simulator, funded, clock
) -> None:  # type: ignore[no-untyped-def]
    """Simulated by making the core refuse the connection-level call: the row stays processing."""
    s = funded()
    core_simulator.inject("PostTransfer", "drop", process=False, times=1)
    transfer = post_transfer(client, s, "10.00").json()
    assert transfer["status"] == "unknown"
    # And a transfer the gateway committed but never got to post at all:
    from gateway.store.tables import Transfer

    with container.db.transaction() as session:
        row = session.get(Transfer, transfer["id"])
        row.status = "processing"  # as if the process died before its outcome was written
        row.unknown_since = None
    stale = container.settings.recovery_stale_processing_seconds
    _recover(container, clock, seconds=stale + 5)
    # Asked, NOT_FOUND, waiting:
    assert get_transfer(client, s, transfer["id"])["status"] == "unknown"
    _recover(container, clock, seconds=container.settings.recovery_not_found_after_seconds + 60)
    s.partner.renew()
    assert get_transfer(client, s, transfer["id"])["status"] == "failed"
    assert core.postings(transfer["id"]) == 0


def test_a_lost_refund_answer_is_resolved_without_a_second_refund(
    client, container, core, core_simulator, funded, clock
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    transfer = post_transfer(client, s, "100.00").json()
    core_simulator.inject("PostTransfer", "drop", times=1)
    refund = post(
        client,
        s,
        f"/v1/transfers/{transfer['id']}/refunds",
        {"amount": {"value": "40.00", "currency": "CNY"}},
    ).json()
    assert refund["status"] == "unknown"
    # the reservation holds while the outcome is unknown
    more = post(
        client,
        s,
        f"/v1/transfers/{transfer['id']}/refunds",
        {"amount": {"value": "60.01", "currency": "CNY"}},
    )
    assert more.json()["code"] == "refund_exceeds_captured"
    _recover(container, clock, seconds=2)
    after = client.get(f"/v1/refunds/{refund['id']}", headers=s.partner.auth).json()
    assert after["status"] == "succeeded"
    assert core.postings(refund["id"]) == 1
    assert get_transfer(client, s, transfer["id"])["amount_refunded"]["value"] == "40.00"
    assert core.available(s.account) == "9940.00"


def test_a_lost_capture_answer_is_resolved_byget_transfer(
    client, container, core, core_simulator, funded, clock
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    held = post_transfer(client, s, "300.00", capture_method="manual").json()
    core_simulator.inject("PostTransfer", "drop", times=1)
    captured = post(
        client,
        s,
        f"/v1/transfers/{held['id']}/capture",
        {"amount": {"value": "120.00", "currency": "CNY"}},
    ).json()
    assert captured["status"] == "unknown"
    _recover(container, clock, seconds=2)
    after = get_transfer(client, s, held["id"])
    assert after["status"] == "succeeded"
    assert after["amount_captured"]["value"] == "120.00"
    assert core.postings(held["id"]) == 1
    assert core.available(s.account) == "9880.00"


def test_an_unconfirmed_hold_is_released_not_left(
    client, container, core, core_simulator, funded, clock
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    core_simulator.inject("PlaceHold", "drop", times=1)
    held = post_transfer(client, s, "300.00", capture_method="manual").json()
    assert held["status"] == "unknown"
    _recover(container, clock, seconds=2)
    after = get_transfer(client, s, held["id"])
    assert after["status"] == "failed"
    assert after["failure"]["code"] == "hold_outcome_unknown"
    assert core.available(s.account) == "10000.00"  # the hold that was placed is gone


def test_recovery_backs_off_while_the_core_is_down(
    client, container, core_simulator, funded, clock
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    core_simulator.inject("PostTransfer", "drop", times=1)
    transfer = post_transfer(client, s, "10.00").json()
    with core_simulator.fault("GetTransactionStatus", "unavailable"):
        _recover(container, clock, seconds=2)
    assert get_transfer(client, s, transfer["id"])["status"] == "unknown"
    gauge = re.search(
        r'^gateway_transfers_unknown\{kind="transfer"\} (\S+)$', client.get("/metrics").text, re.M
    )
    assert gauge is not None and float(gauge.group(1)) >= 1  # operators see money in doubt
    _recover(container, clock, seconds=timedelta(minutes=10).total_seconds())
    s.partner.renew()
    assert get_transfer(client, s, transfer["id"])["status"] == "succeeded"


def test_an_outcome_that_could_not_be_recorded_is_recovered_once(
    client, container, core, funded, restore_clock, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The outcome, its event and the response kept for retries commit in one transaction: if
    it fails, none of them is written, and recovery settles the transfer from the core's word
    (never by posting again); a retry after the key's lock then resumes the transfer."""
    from sqlalchemy import select

    from gateway.store.tables import Event, Transfer

    s = funded()
    keys = container.transfers.idempotency
    complete = keys.complete

    def failing_in_the_outcome_transaction(request, status, body, *, session=None):  # type: ignore[no-untyped-def]
        if session is not None:
            raise RuntimeError("the outcome transaction fails")
        return complete(request, status, body, session=session)

    monkeypatch.setattr(keys, "complete", failing_in_the_outcome_transaction)
    key = "outcome-lost-1"
    assert post_transfer(client, s, "100.00", key=key).status_code == 500
    monkeypatch.undo()
    with container.db.read() as session:
        transfer = session.scalars(
            select(Transfer).where(Transfer.partner_id == s.partner.id)
        ).one()
        types = session.scalars(select(Event.type).where(Event.resource_id == transfer.id)).all()
    assert transfer.status == "processing"  # the booked outcome was not half-written
    assert list(types) == ["transfer.processing"]
    assert core.postings(transfer.id) == 1

    stale = container.settings.recovery_stale_processing_seconds
    _recover(container, restore_clock, seconds=stale + 5)
    assert get_transfer(client, s, transfer.id)["status"] == "succeeded"
    assert core.postings(transfer.id) == 1

    restore_clock.advance(seconds=container.settings.idempotency_lock_seconds + 1)
    s.partner.renew()  # a token valid at the new time
    retry = post_transfer(client, s, "100.00", key=key)
    assert retry.status_code == 201, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == transfer.id and retry.json()["status"] == "succeeded"
    assert core.postings(transfer.id) == 1
