"""Captures and voids of a hold: one at a time, and none left half-done.

A second capture (or a void) under another Idempotency-Key while the first is at the core is
refused; a core that is down leaves the hold usable; a capture whose process died before the
core answered is cleared by recovery without stalling the rest of its pass; a partial capture
pays the fee on what was taken.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

from gateway.store.tables import Transfer
from tests.flows import Setup, charge_fees, get_transfer, post, post_transfer


def _capture(client, s: Setup, transfer_id: str, value: str):  # type: ignore[no-untyped-def]
    return post(
        client,
        s,
        f"/v1/transfers/{transfer_id}/capture",
        {"amount": {"value": value, "currency": "CNY"}},
    )


def test_a_second_capture_or_void_while_one_is_at_the_core_is_refused(
    client, core, core_simulator, funded
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    held = post_transfer(client, s, "300.00", capture_method="manual").json()
    assert held["status"] == "authorized"
    before = core_simulator.request_count("PostTransfer")
    core_simulator.inject("PostTransfer", "latency", seconds=1.5, times=1)
    first: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: first.update(response=_capture(client, s, held["id"], "120.00"))
    )
    worker.start()
    deadline = time.monotonic() + 10
    while core_simulator.request_count("PostTransfer") == before:  # the first is at the core
        assert time.monotonic() < deadline, "the first capture never reached the core"
        time.sleep(0.02)
    second = _capture(client, s, held["id"], "300.00")
    void = post(client, s, f"/v1/transfers/{held['id']}/void")
    worker.join()
    assert second.status_code == 409 and second.json()["code"] == "operation_in_progress"
    assert void.status_code == 409 and void.json()["code"] == "operation_in_progress"
    assert first["response"].status_code == 200, first["response"].text
    after = get_transfer(client, s, held["id"])
    assert after["status"] == "succeeded"
    assert after["amount_captured"]["value"] == "120.00"
    assert core.postings(held["id"]) == 1
    assert core.available(s.account) == "9880.00"


def test_a_capture_while_the_core_is_down_leaves_the_hold_usable(
    client, core, core_simulator, funded
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    held = post_transfer(client, s, "300.00", capture_method="manual").json()
    with core_simulator.fault("PostTransfer", "unavailable"):
        refused = _capture(client, s, held["id"], "100.00")
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "core_banking_unavailable"
    assert get_transfer(client, s, held["id"])["status"] == "authorized"
    assert core.postings(held["id"]) == 0
    retried = _capture(client, s, held["id"], "100.00")
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "succeeded"
    assert core.postings(held["id"]) == 1
    assert core.available(s.account) == "9900.00"


def test_a_capture_that_died_before_the_core_answered_is_cleared_without_stalling_recovery(
    client, container, core, core_simulator, funded, restore_clock
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    held = post_transfer(client, s, "300.00", capture_method="manual").json()
    core_simulator.inject("PostTransfer", "drop", process=False, times=1)
    lost = post_transfer(client, s, "10.00").json()  # an unknown transfer in the same pass
    assert lost["status"] == "unknown"
    with container.db.transaction() as session:  # as if the process died mid-capture
        row = session.get(Transfer, held["id"])
        row.pending_operation = "capture"
        row.captured_amount = 12_000
        row.next_check_at = None
    settings = container.settings
    restore_clock.advance(
        seconds=settings.recovery_stale_processing_seconds
        + settings.recovery_not_found_after_seconds
        + 60
    )
    s.partner.renew()
    container.recovery.run()
    after = get_transfer(client, s, held["id"])
    assert after["status"] == "authorized"  # the hold stands, as before the capture
    assert after["history"][-1]["to"] == "authorized"
    assert get_transfer(client, s, lost["id"])["status"] == "failed"  # the pass went on
    captured = _capture(client, s, held["id"], "50.00")
    assert captured.status_code == 200, captured.text
    assert captured.json()["amount_captured"]["value"] == "50.00"
    assert core.postings(held["id"]) == 1


def test_a_partial_capture_pays_the_fee_on_what_was_taken(client, container, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    charge_fees(container, s, rate_ppm=10_000)
    held = post_transfer(client, s, "1000.00", capture_method="manual").json()
    assert held["fee"]["amount"]["value"] == "10.00"  # quoted on the hold
    captured = _capture(client, s, held["id"], "400.00").json()
    assert captured["status"] == "succeeded"
    assert captured["fee"] == {"amount": {"value": "4.00", "currency": "CNY"}, "status": "pending"}
    fee_account = container.settings.fee_income_accounts["CNY"]
    before = Decimal(core.available(fee_account))
    assert container.recovery.book_fees() >= 1
    assert Decimal(core.available(fee_account)) - before == Decimal("4.00")
