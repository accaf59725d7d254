"""End to end: a payout through gateway -> core simulator -> GSMA sandbox -> callback -> capture,
and the ways it can go wrong. Each test ends with the balances at the core simulator (the
customer debited exactly once or not at all, the provider's clearing account credited) and
exactly one of capture or release of the customer's hold.

In process and fast: the `client` fixture is the gateway, the sandbox serves on a loopback
port, callbacks are delivered when the test says so, time is moved instead of waited for, and
the recovery worker is run explicitly.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from adapters.providers.gsma_mm import GsmaMmProvider, GsmaMmSettings
from adapters.providers.gsma_mm.webhooks import callback_headers
from tests.conftest import GSMA_PROCESSING_SECONDS, gsma_settings
from tests.event_schemas import assert_event_matches_schema
from tests.payouts import WALLET, Money, deliver, get, send_payout

# These tests move the session clock (provider processing, polling windows): put it back.
pytestmark = pytest.mark.usefixtures("restore_clock")


@pytest.fixture
def channel(make_partner: Any) -> Any:
    return make_partner(kind="bank_channel")


@pytest.fixture
def customer(core: Any) -> str:
    return str(core.open_account("Wanjiru Kamau", "KES", balance="5000.00"))


def test_payout_is_held_sent_called_back_and_captured(
    client: Any,
    channel: Any,
    customer: str,
    core: Any,
    core_simulator: Any,
    gsma_sandbox: Any,
    clock: Any,
) -> None:
    money = Money(core, core_simulator, customer)
    wallet_before = gsma_sandbox.wallet_balance(WALLET)

    response = send_payout(client, channel, customer, amount="250.00")

    assert response.status_code == 201, response.text
    payout = response.json()
    assert payout["status"] == "processing"
    assert payout["source_account"] == {"masked": "****" + customer[-4:]}
    assert payout["recipient"] == {"type": "msisdn", "masked": "****5601"}
    # The funds are held while the provider pays.
    assert Decimal(core.available(customer)) == money.customer_before - Decimal("250.00")
    assert [h["status"] for h in money.holds()] == ["PLACED"]

    clock.advance(seconds=GSMA_PROCESSING_SECONDS)  # the provider completes the payment
    delivered = deliver(gsma_sandbox, client)

    assert [record.statuses for record in delivered] == [[204]]
    done = get(client, channel, payout["id"])
    assert done["status"] == "succeeded"
    assert done["provider_reference"]
    money.assert_paid(payout["id"], "250.00")
    assert gsma_sandbox.wallet_balance(WALLET) == wallet_before + Decimal("250.00")
    steps = [step["step"] for step in done["history"]]
    assert steps[:2] == ["requested", "hold_placed"]
    assert steps[-2:] == ["decided_capture", "captured"]


def test_a_payout_the_provider_completes_at_once_is_captured_at_once(
    client: Any,
    channel: Any,
    customer: str,
    core: Any,
    core_simulator: Any,
    gsma_sandbox: Any,
    container: Any,
    settings: Any,
    clock: Any,
) -> None:
    """GSMA MM API synchronous mode: the disbursement is answered 201 with the completed
    transaction. The payout is decided and captured within the partner's request; no callback
    follows, and nothing is left for recovery to do."""
    money = Money(core, core_simulator, customer)
    wallet_before = gsma_sandbox.wallet_balance(WALLET)
    gsma_sandbox.inject("disbursement", "synchronous")

    response = send_payout(client, channel, customer, amount="180.00")

    assert response.status_code == 201, response.text
    payout = response.json()
    assert payout["status"] == "succeeded"
    money.assert_paid(payout["id"], "180.00")
    assert gsma_sandbox.wallet_balance(WALLET) == wallet_before + Decimal("180.00")
    key = container.providers.get("gsma_mm").idempotency_key(payout["id"])
    sent = gsma_sandbox.disbursement(key)
    assert (sent.synchronous, sent.status) == (True, "completed")
    done = get(client, channel, payout["id"])
    assert done["provider_reference"] == sent.transaction_reference
    assert [step["step"] for step in done["history"]] == [
        "requested",
        "hold_placed",
        "decided_capture",
        "captured",
    ]
    assert [t["to"] for t in done["history"] if t["from"] != t["to"]] == [
        "created",
        "processing",
        "succeeded",
    ]

    clock.advance(seconds=settings.payout_poll_seconds + GSMA_PROCESSING_SECONDS)
    assert deliver(gsma_sandbox, client) == []  # the answer was the outcome: no callback
    container.payout_recovery.run()
    assert get(client, channel, payout["id"])["history"] == done["history"]
    money.assert_paid(payout["id"], "180.00")  # still one capture, no release


def test_provider_refusal_fails_the_payout_and_releases_the_hold(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any, gsma_sandbox: Any
) -> None:
    money = Money(core, core_simulator, customer)
    gsma_sandbox.inject(
        "disbursement", "reject", category="businessRule", code="dailyValueLimitExceeded"
    )

    response = send_payout(client, channel, customer)

    assert response.status_code == 201, response.text
    payout = response.json()
    assert payout["status"] == "failed"
    assert payout["failure"]["code"] == "recipient_limit_exceeded"
    money.assert_not_paid(payout["id"])
    assert [h["status"] for h in money.holds()] == ["RELEASED"]
    steps = [step["step"] for step in get(client, channel, payout["id"])["history"]]
    assert steps == ["requested", "hold_placed", "decided_release", "released"]


def test_provider_times_out_then_reports_success_by_callback(
    client: Any,
    channel: Any,
    customer: str,
    core: Any,
    core_simulator: Any,
    gsma_sandbox: Any,
    container: Any,
    settings: Any,
    clock: Any,
) -> None:
    """The POST is carried out but its answer never arrives in time (both attempts: the retry
    carries the same X-CorrelationID, so the provider still has ONE disbursement)."""
    money = Money(core, core_simulator, customer)
    impatient = GsmaMmProvider(
        GsmaMmSettings(**gsma_settings(gsma_sandbox, read_timeout_seconds=0.3, retry_attempts=2)),
        container.providers.context,
    )
    previous = container.providers.replace("gsma_mm", impatient)
    try:
        with gsma_sandbox.fault("disbursement", "timeout", seconds=2, times=2):
            response = send_payout(client, channel, customer)
    finally:
        container.providers.replace("gsma_mm", previous)
        impatient.close()

    payout = response.json()
    assert payout["status"] == "unknown"
    assert [h["status"] for h in money.holds()] == ["PLACED"]  # nothing decided yet
    assert core.postings(payout["id"]) == 0
    assert gsma_sandbox.request_count("disbursement") >= 2
    assert len(gsma_sandbox.ledger.disbursements) == len(
        {d.correlation_id for d in gsma_sandbox.ledger.disbursements.values()}
    )

    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    delivered = deliver(gsma_sandbox, client)

    assert [record.statuses for record in delivered] == [[204]]
    done = get(client, channel, payout["id"])
    assert done["status"] == "succeeded"
    money.assert_paid(payout["id"], "100.00")
    assert [t["to"] for t in done["history"] if t["from"] != t["to"]] == [
        "created",
        "processing",
        "unknown",
        "processing",
        "succeeded",
    ]


def test_a_lost_callback_is_recovered_by_polling(
    client: Any,
    channel: Any,
    customer: str,
    core: Any,
    core_simulator: Any,
    gsma_sandbox: Any,
    container: Any,
    settings: Any,
    clock: Any,
) -> None:
    money = Money(core, core_simulator, customer)
    gsma_sandbox.inject("disbursement", "drop_callback")
    payout = send_payout(client, channel, customer, amount="75.50").json()
    assert payout["status"] == "processing"

    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    assert deliver(gsma_sandbox, client) == []  # the provider never calls back
    assert get(client, channel, payout["id"])["status"] == "processing"

    clock.advance(seconds=settings.payout_poll_seconds + 1)  # time to ask
    container.payout_recovery.run()

    done = get(client, channel, payout["id"])
    assert done["status"] == "succeeded"
    assert "status query" in [t["cause"] for t in done["history"]][-2]
    money.assert_paid(payout["id"], "75.50")
    container.payout_recovery.run()  # nothing left to do for it: still exactly one capture
    money.assert_paid(payout["id"], "75.50")


def test_a_forged_callback_is_refused_and_changes_nothing(
    client: Any,
    channel: Any,
    customer: str,
    core: Any,
    core_simulator: Any,
    gsma_sandbox: Any,
    container: Any,
    clock: Any,
) -> None:
    money = Money(core, core_simulator, customer)
    gsma_sandbox.inject("disbursement", "forged_callback")
    payout = send_payout(client, channel, customer).json()
    key = container.providers.get("gsma_mm").idempotency_key(payout["id"])

    # Before the provider has done anything, someone claims the payment failed...
    forged = b'{"errorCategory": "businessRule", "errorCode": "genericError"}'
    headers = callback_headers(forged, correlation_id=key, at=clock.now(), api_key="guessed")
    response = client.put("/v1/providers/gsma_mm/webhooks", headers=headers, content=forged)

    assert response.status_code == 401
    assert response.json()["code"] == "webhook_verification_failed"
    assert get(client, channel, payout["id"])["status"] == "processing"
    assert [h["status"] for h in money.holds()] == ["PLACED"]
    assert core.postings(payout["id"]) == 0

    # ...then the provider completes: the genuine callback is applied, the sandbox's own
    # forgery (the opposite outcome, without the shared key) is refused.
    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    delivered = deliver(gsma_sandbox, client)

    assert sorted((r.forged, r.statuses[0]) for r in delivered) == [(False, 204), (True, 401)]
    assert get(client, channel, payout["id"])["status"] == "succeeded"
    money.assert_paid(payout["id"], "100.00")
    rejected = [
        n
        for n in container.provider_webhooks.recent("gsma_mm", limit=20)
        if n["outcome"] == "rejected"
    ]
    assert {n["reason"] for n in rejected} >= {"api_key_mismatch"}


def test_duplicate_callbacks_capture_once(
    client: Any,
    channel: Any,
    customer: str,
    core: Any,
    core_simulator: Any,
    gsma_sandbox: Any,
    clock: Any,
) -> None:
    money = Money(core, core_simulator, customer)
    gsma_sandbox.inject("disbursement", "duplicate_callback")
    payout = send_payout(client, channel, customer).json()

    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    delivered = deliver(gsma_sandbox, client)

    assert [r.statuses for r in delivered] == [[204], [204]]
    money.assert_paid(payout["id"], "100.00")


def test_a_failure_reported_by_callback_releases_the_hold(
    client: Any,
    channel: Any,
    customer: str,
    core: Any,
    core_simulator: Any,
    gsma_sandbox: Any,
    clock: Any,
) -> None:
    money = Money(core, core_simulator, customer)
    payout = send_payout(client, channel, customer, msisdn="+254712345603").json()  # blocked
    assert payout["status"] == "processing"

    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    deliver(gsma_sandbox, client)

    done = get(client, channel, payout["id"])
    assert done["status"] == "failed"
    assert done["failure"]["code"] == "provider_declined"
    money.assert_not_paid(payout["id"])
    assert [h["status"] for h in money.holds()] == ["RELEASED"]


def test_payout_events_carry_the_snapshot(
    client: Any, channel: Any, customer: str, gsma_sandbox: Any, container: Any, clock: Any
) -> None:
    payout = send_payout(client, channel, customer).json()
    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    deliver(gsma_sandbox, client)

    events = client.get(
        "/v1/events",
        headers=channel.auth,
        params={"type": ["payout.created", "payout.processing", "payout.succeeded"]},
    ).json()["data"]
    mine = [e for e in events if e["resource"]["id"] == payout["id"]]
    assert sorted(e["type"] for e in mine) == [
        "payout.created",
        "payout.processing",
        "payout.succeeded",
    ]
    for event in mine:
        assert_event_matches_schema(event)
    sequences = {e["type"]: e["sequence"] for e in mine}
    assert (
        sequences["payout.created"] < sequences["payout.processing"] < sequences["payout.succeeded"]
    )
