"""Transfers through the HTTP API against the core-banking simulator over loopback."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from gateway.store.tables import Event, PartnerLimit
from tests.event_schemas import assert_event_matches_schema
from tests.flows import Setup, charge_fees, create_active_link, last_code, post, post_transfer


def events_of(container, resource_id: str) -> list[Event]:  # type: ignore[no-untyped-def]
    with container.db.read() as session:
        return list(
            session.scalars(
                select(Event).where(Event.resource_id == resource_id).order_by(Event.sequence)
            )
        )


# --- debit and credit -------------------------------------------------------------------------


def test_a_debit_moves_money_once_and_tells_its_story(client, container, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    response = post_transfer(client, s, "100.00", partner_reference="order-1", description="top-up")
    assert response.status_code == 201, response.text
    transfer = response.json()
    assert transfer["status"] == "succeeded"
    assert transfer["amount"] == {"value": "100.00", "currency": "CNY"}
    assert transfer["amount_captured"] == {"value": "100.00", "currency": "CNY"}
    assert [(h["from"], h["to"], h["cause"]) for h in transfer["history"]] == [
        (None, "created", "requested"),
        ("created", "processing", "created"),
        ("processing", "succeeded", "booked by the core"),
    ]
    assert core.available(s.account) == "9900.00"
    assert core.available(s.settlement) == "100100.00"
    assert core.postings(transfer["id"]) == 1
    events = events_of(container, transfer["id"])
    assert [(e.type, e.sequence) for e in events] == [
        ("transfer.processing", 1),
        ("transfer.succeeded", 2),
    ]
    for event in events:
        assert_event_matches_schema(event)
    assert events[0].data["status"] == "processing" and events[1].data["status"] == "succeeded"
    fetched = client.get(f"/v1/transfers/{transfer['id']}", headers=s.partner.auth).json()
    assert fetched == transfer  # the response is the transfer as stored, history included
    assert s.account not in str(fetched)


def test_a_retried_debit_replays_the_same_answer(client, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    key = str(uuid.uuid4())
    first = post_transfer(client, s, "10.00", key=key)
    again = post_transfer(client, s, "10.00", key=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert core.postings(first.json()["id"]) == 1


def test_a_credit_pays_the_customer_from_the_settlement_account(client, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    transfer = post_transfer(client, s, "250.00", direction="credit").json()
    assert transfer["status"] == "succeeded"
    assert core.available(s.account) == "10250.00"
    assert core.available(s.settlement) == "99750.00"


def test_insufficient_funds_is_a_failed_transfer(client, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded(balance="50.00")
    transfer = post_transfer(client, s, "100.00").json()
    assert transfer["status"] == "failed"
    assert transfer["failure"]["code"] == "insufficient_funds"
    assert core.available(s.account) == "50.00"
    assert core.postings(transfer["id"]) == 0


def test_an_account_gone_dormant_fails_at_the_core(client, core, core_simulator, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    core_simulator.ledger.update_account(s.account, status="DORMANT")
    transfer = post_transfer(client, s, "10.00").json()
    assert transfer["status"] == "failed"
    assert transfer["failure"]["code"] == "account_inactive"


def test_currency_must_match_the_link(client, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    response = post_transfer(client, s, "10.00", currency="USD")
    assert response.status_code == 422
    assert response.json()["code"] in ("currency_not_supported", "currency_mismatch")


def test_a_misconfigured_settlement_currency_is_refused_by_the_core(
    client, container, core, make_partner
) -> None:  # type: ignore[no-untyped-def]
    usd_settlement = core.open_account("Wrong", "USD", kind="settlement", mobile=None)
    partner = make_partner(settlement_account=usd_settlement, settlement_currency="CNY")
    link = create_active_link(client, container, core, partner)
    s = Setup(partner, link, "", usd_settlement)
    transfer = post_transfer(client, s, "10.00").json()
    assert transfer["status"] == "failed"
    assert transfer["failure"]["code"] == "currency_mismatch"


def test_the_link_scope_and_state_are_enforced(client, container, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    client.delete(f"/v1/links/{s.link['id']}", headers=s.partner.auth)
    response = post_transfer(client, s, "10.00")
    assert response.status_code == 409
    assert response.json()["code"] == "link_not_active"


# --- limits, risk, step-up ---------------------------------------------------------------------


def test_consent_limits_per_transaction_and_daily(client, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded(balance="100000.00")  # consent: 5000.00 per transaction, 20000.00 a day
    too_big = post_transfer(client, s, "5000.01")
    assert too_big.status_code == 422
    assert (too_big.json()["code"], too_big.json()["limit"]) == (
        "limit_exceeded",
        "per_transaction",
    )
    for _ in range(5):
        assert post_transfer(client, s, "4000.00").json()["status"] == "succeeded"
    over = post_transfer(client, s, "0.01")
    assert over.status_code == 422
    assert over.json()["limit"] == "daily"
    assert core.available(s.account) == "80000.00"
    credit = post_transfer(client, s, "100.00", direction="credit")  # limits bind debits only
    assert credit.json()["status"] == "succeeded"


def test_partner_caps(client, container, funded, make_partner) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    with container.db.transaction() as session:
        session.add(
            PartnerLimit(
                partner_id=s.partner.id, currency="CNY", per_transaction=20_000, daily=30_000
            )
        )
    assert post_transfer(client, s, "200.01").json()["code"] == "partner_limit_exceeded"
    assert post_transfer(client, s, "200.00").json()["status"] == "succeeded"
    refused = post_transfer(client, s, "100.01", direction="credit")
    assert refused.json()["limit"] == "daily"
    operator = make_partner(kind="operator")
    hits = client.get(f"/admin/v1/links/{s.link['id']}/risk-events", headers=operator.auth)
    assert [(h["rule"], h["action"]) for h in hits.json()["data"]] == [
        ("partner_daily", "capped"),
        ("partner_per_transaction", "capped"),
    ]
    # The partner's own cap is not the customer's doing: it never suspends the link.
    link = client.get(f"/v1/links/{s.link['id']}", headers=s.partner.auth).json()
    assert link["status"] == "active"


def test_velocity_rejects_then_suspends_the_link(client, container, funded, make_partner) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    limit = container.settings.risk_velocity_max
    for _ in range(limit):
        assert post_transfer(client, s, "1.00").status_code == 201
    codes = [
        post_transfer(client, s, "1.00").json()["code"]
        for _ in range(container.settings.risk_suspend_after_hits)
    ]
    assert set(codes) == {"velocity_exceeded"}
    link = client.get(f"/v1/links/{s.link['id']}", headers=s.partner.auth).json()
    assert link["status"] == "suspended"
    assert "velocity" in link["status_reason"]
    assert post_transfer(client, s, "1.00").json()["code"] == "link_not_active"
    operator = make_partner(kind="operator")
    hits = client.get(f"/admin/v1/links/{s.link['id']}/risk-events", headers=operator.auth)
    assert hits.status_code == 200, hits.text
    actions = [(h["rule"], h["action"]) for h in hits.json()["data"]]
    assert actions[0] == ("velocity", "suspended")  # newest first: why it was suspended
    assert actions[1:] == [("velocity", "rejected")] * container.settings.risk_suspend_after_hits
    unknown = client.get(f"/admin/v1/links/lnk_{'0' * 26}/risk-events", headers=operator.auth)
    assert unknown.status_code == 404
    assert (
        client.get(
            f"/admin/v1/links/{s.link['id']}/risk-events", headers=s.partner.auth
        ).status_code
        == 403
    )


def test_step_up_needs_the_customers_code(client, container, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    created = post_transfer(client, s, "5000.00")
    assert created.status_code == 201
    transfer = created.json()
    assert transfer["status"] == "requires_action"
    assert transfer["next_action"]["type"] == "confirm_otp"
    assert core.available(s.account) == "10000.00"  # nothing moves before confirmation
    code = last_code(container, _mobile_of(container, s))
    wrong = post(
        client,
        s,
        f"/v1/transfers/{transfer['id']}/confirm",
        {"code": f"{(int(code) + 1) % 10**6:06d}"},
    )
    assert wrong.status_code == 422
    assert wrong.json()["code"] == "otp_invalid"
    confirmed = post(client, s, f"/v1/transfers/{transfer['id']}/confirm", {"code": code})
    assert confirmed.json()["status"] == "succeeded"
    assert core.available(s.account) == "5000.00"


def test_an_unconfirmed_step_up_expires(client, container, funded, clock) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    transfer = post_transfer(client, s, "5000.00").json()
    clock.advance(minutes=6)
    try:
        container.recovery.expire()
    finally:
        clock.advance(minutes=-6)
    s.partner.renew()
    after = client.get(f"/v1/transfers/{transfer['id']}", headers=s.partner.auth).json()
    assert after["status"] == "failed"
    assert after["failure"]["code"] == "step_up_expired"


def _mobile_of(container, s: Setup) -> str:  # type: ignore[no-untyped-def]
    messages = container.notifier.messages(limit=50)
    return next(m["to"] for m in messages if m["reference"] == s.link["id"])


# --- manual capture ----------------------------------------------------------------------------


def test_hold_then_partial_capture(client, core, core_simulator, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    held = post_transfer(client, s, "300.00", capture_method="manual").json()
    assert held["status"] == "authorized"
    assert held["hold_expires_at"]
    assert core.available(s.account) == "9700.00"
    captured = post(
        client,
        s,
        f"/v1/transfers/{held['id']}/capture",
        {"amount": {"value": "200.00", "currency": "CNY"}},
    ).json()
    assert captured["status"] == "succeeded"
    assert captured["amount_captured"]["value"] == "200.00"
    assert core.available(s.account) == "9800.00"  # the other 100.00 is released
    assert core.available(s.settlement) == "100200.00"
    assert core.postings(held["id"]) == 1


def test_capture_cannot_exceed_the_hold(client, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    held = post_transfer(client, s, "300.00", capture_method="manual").json()
    response = post(
        client,
        s,
        f"/v1/transfers/{held['id']}/capture",
        {"amount": {"value": "300.01", "currency": "CNY"}},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "amount_exceeds_hold"


def test_void_releases_the_hold(client, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    held = post_transfer(client, s, "300.00", capture_method="manual").json()
    voided = post(client, s, f"/v1/transfers/{held['id']}/void").json()
    assert voided["status"] == "voided"
    assert core.available(s.account) == "10000.00"
    again = post(client, s, f"/v1/transfers/{held['id']}/capture")
    assert again.status_code == 409


def test_an_expired_hold_is_released_by_the_sweeper(client, container, core, funded, clock) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    held = post_transfer(client, s, "300.00", capture_method="manual").json()
    clock.advance(hours=container.settings.hold_max_hours, minutes=1)
    try:
        assert container.recovery.expire() >= 1
    finally:
        clock.advance(hours=-container.settings.hold_max_hours, minutes=-1)
    s.partner.renew()
    after = client.get(f"/v1/transfers/{held['id']}", headers=s.partner.auth).json()
    assert after["status"] == "voided"
    assert after["history"][-1]["cause"] == "hold expired"
    assert core.available(s.account) == "10000.00"


def test_manual_capture_is_for_debits(client, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    response = post_transfer(client, s, "1.00", direction="credit", capture_method="manual")
    assert response.status_code == 400


# --- refunds -----------------------------------------------------------------------------------


def test_partial_and_repeated_refunds(client, container, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    transfer = post_transfer(client, s, "100.00").json()
    path = f"/v1/transfers/{transfer['id']}/refunds"
    first = post(client, s, path, {"amount": {"value": "30.00", "currency": "CNY"}, "reason": "r1"})
    assert first.status_code == 201
    assert first.json()["status"] == "succeeded"
    after_first = client.get(f"/v1/transfers/{transfer['id']}", headers=s.partner.auth).json()
    assert after_first["status"] == "partially_refunded"
    too_much = post(client, s, path, {"amount": {"value": "70.01", "currency": "CNY"}})
    assert too_much.status_code == 422
    assert too_much.json()["refundable"] == {"value": "70.00", "currency": "CNY"}
    assert (
        post(client, s, path, {"amount": {"value": "70.00", "currency": "CNY"}}).json()["status"]
        == "succeeded"
    )
    final = client.get(f"/v1/transfers/{transfer['id']}", headers=s.partner.auth).json()
    assert final["status"] == "refunded"
    assert final["amount_refunded"]["value"] == "100.00"
    assert core.available(s.account) == "10000.00"
    assert (
        post(client, s, path, {"amount": {"value": "0.01", "currency": "CNY"}}).status_code == 409
    )
    listed = client.get(path, headers=s.partner.auth).json()["data"]
    assert [r["amount"]["value"] for r in listed] == ["30.00", "70.00"]
    for refund in listed:
        assert core.postings(refund["id"]) == 1
        for event in events_of(container, refund["id"]):
            assert_event_matches_schema(event)


def test_credits_cannot_be_refunded(client, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    transfer = post_transfer(client, s, "10.00", direction="credit").json()
    response = post(
        client,
        s,
        f"/v1/transfers/{transfer['id']}/refunds",
        {"amount": {"value": "1.00", "currency": "CNY"}},
    )
    assert response.json()["code"] == "refund_not_supported"


def test_concurrent_refunds_never_exceed_the_original(client, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    transfer = post_transfer(client, s, "100.00").json()
    barrier = threading.Barrier(10)

    def refund(_: int) -> int:
        barrier.wait()
        return post(
            client,
            s,
            f"/v1/transfers/{transfer['id']}/refunds",  # type: ignore[no-any-return]
            {"amount": {"value": "15.00", "currency": "CNY"}},
        ).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(refund, range(10)))
    assert statuses.count(201) == 6  # 6 x 15.00 = 90.00 fits, a 7th would be 105.00
    assert set(statuses) <= {201, 422}
    final = client.get(f"/v1/transfers/{transfer['id']}", headers=s.partner.auth).json()
    assert final["amount_refunded"]["value"] == "90.00"
    assert core.available(s.account) == "9990.00"


# --- fees --------------------------------------------------------------------------------------


def test_fees_are_shown_and_booked_as_their_own_posting(client, container, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    charge_fees(container, s, fixed=100, rate_ppm=5_000, minimum=150, maximum=5_000)
    transfer = post_transfer(client, s, "1000.00").json()
    assert transfer["fee"] == {"amount": {"value": "6.00", "currency": "CNY"}, "status": "pending"}
    fee_account = container.settings.fee_income_accounts["CNY"]
    before = core.available(fee_account)
    assert container.recovery.book_fees() >= 1
    after = client.get(f"/v1/transfers/{transfer['id']}", headers=s.partner.auth).json()
    assert after["fee"]["status"] == "booked"
    assert core.available(s.settlement) == "100994.00"  # +1000.00 - 6.00 fee
    from decimal import Decimal

    assert Decimal(core.available(fee_account)) - Decimal(before) == Decimal("6.00")
    assert core.available(s.account) == "9000.00"  # the customer pays no fee


# --- reads -------------------------------------------------------------------------------------


def test_listing_filters_and_isolation(client, funded, make_partner) -> None:  # type: ignore[no-untyped-def]
    s = funded(balance="50.00")
    ok = post_transfer(client, s, "10.00").json()
    failed = post_transfer(client, s, "100.00").json()
    by_status = client.get("/v1/transfers?status=failed", headers=s.partner.auth).json()["data"]
    assert [t["id"] for t in by_status] == [failed["id"]]
    by_link = client.get(
        f"/v1/transfers?link_id={s.link['id']}&limit=1", headers=s.partner.auth
    ).json()
    assert by_link["has_more"] and by_link["data"][0]["id"] == failed["id"]
    stranger = make_partner()
    assert client.get(f"/v1/transfers/{ok['id']}", headers=stranger.auth).status_code == 404
    assert client.get("/v1/transfers", headers=stranger.auth).json()["data"] == []


def test_idempotent_replay_and_reuse(client, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    key = str(uuid.uuid4())
    first = post_transfer(client, s, "10.00", key=key)
    again = post_transfer(client, s, "10.00", key=key)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert post_transfer(client, s, "11.00", key=key).json()["code"] == "idempotency_key_reused"
    assert core.postings(first.json()["id"]) == 1
    assert core.available(s.account) == "9990.00"


def test_fifty_concurrent_identical_requests_post_once(client, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    key = str(uuid.uuid4())
    barrier = threading.Barrier(50)

    def attempt(_: int) -> tuple[int, dict[str, Any]]:
        barrier.wait()
        response = post_transfer(client, s, "10.00", key=key)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(attempt, range(50)))
    assert {status for status, _ in answers} == {201}
    bodies = {json.dumps(body) for _, body in answers}  # key order included: the same bytes
    assert len(bodies) == 1
    transfer_id = answers[0][1]["id"]
    assert core.postings(transfer_id) == 1
    assert core.available(s.account) == "9990.00"


def test_time_moves_limits_into_a_new_day(client, container, core, funded, clock) -> None:  # type: ignore[no-untyped-def]
    s = funded(balance="100000.00")
    for _ in range(5):
        post_transfer(client, s, "4000.00")
    assert post_transfer(client, s, "1.00").status_code == 422
    clock.advance(timedelta(days=1))
    try:
        s.partner.renew()
        assert post_transfer(client, s, "1.00").json()["status"] == "succeeded"
    finally:
        clock.advance(timedelta(days=-1))
        s.partner.renew()
