"""Payouts through the API and the service: who may send them, what is checked before any money
is held, refusals by the core, answers lost between the gateway and the core or the provider
(resolved by the recovery worker, never by a second movement of money), anomalies, reads, and
what the logs never show. tests/e2e/test_payouts_gsma.py has the provider-side failure paths."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from adapters.base import PayoutResult
from adapters.providers.registry import ProviderRegistry
from gateway.domain.money import Money as Amount
from gateway.store.tables import AuditEntry, Payout
from tests.conftest import CN_PROCESSING_SECONDS, GSMA_PROCESSING_SECONDS, gsma_settings
from tests.payouts import WALLET, Money, deliver, deliver_posts, get, send_payout

# These tests move the session clock (provider processing, polling windows): put it back.
pytestmark = pytest.mark.usefixtures("restore_clock")


@pytest.fixture
def channel(make_partner: Any) -> Any:
    return make_partner(kind="bank_channel")


@pytest.fixture
def customer(core: Any) -> str:
    return str(core.open_account("Otieno Odhiambo", "KES", balance="5000.00"))


def payload(source: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source_account": source,
        "provider": "gsma_mm",
        "recipient": {"type": "msisdn", "value": WALLET},
        "amount": {"value": "100.00", "currency": "KES"},
    }
    body.update(changes)
    return body


def create(client: Any, channel: Any, body: dict[str, Any], key: str | None = None) -> Any:
    return client.post(
        "/v1/payouts",
        headers={**channel.auth, "Idempotency-Key": key or str(uuid.uuid4())},
        json=body,
    )


def stale(settings: Any) -> timedelta:
    return timedelta(seconds=settings.recovery_stale_processing_seconds + 1)


# --- who may send what ---------------------------------------------------------------------------


def test_only_bank_channels_send_payouts(client: Any, make_partner: Any, customer: str) -> None:
    wallet = make_partner(kind="wallet")
    reader = make_partner(kind="bank_channel", scopes=["payouts:read"])
    assert create(client, wallet, payload(customer)).status_code == 403
    assert create(client, reader, payload(customer)).status_code == 403


@pytest.mark.parametrize(
    ("changes", "status", "code", "pointer"),
    [
        ({"provider": "paypal"}, 422, "provider_not_enabled", "/provider"),
        ({"amount": {"value": "10.00", "currency": "USD"}}, 422, "currency_not_supported",
         "/amount/currency"),
        ({"amount": {"value": "10.001", "currency": "KES"}}, 400, "validation_failed",
         "/amount/value"),
        ({"amount": {"value": "0.00", "currency": "KES"}}, 400, "validation_failed",
         "/amount/value"),
        ({"recipient": {"type": "msisdn", "value": "call me"}}, 400, "validation_failed",
         "/recipient/value"),
        ({"account_number": "1"}, 400, "validation_failed", "/account_number"),
        ({"recipient": {"type": "openid", "value": "o-1"}}, 422, "recipient_type_not_supported",
         "/recipient/type"),
        ({"recipient": {"type": "msisdn", "value": WALLET, "name": "   "}}, 400,
         "validation_failed", "/recipient/name"),
        # The providers' own pre-checks, answered before any money is held:
        ({"provider": "wechatpay", "recipient": {"type": "openid", "value": "o-1"},
          "amount": {"value": "2000.00", "currency": "CNY"}}, 422, "recipient_name_required",
         "/recipient/name"),
        ({"provider": "wechatpay", "recipient": {"type": "openid", "value": "o-1"},
          "amount": {"value": "10.00", "currency": "KES"}}, 422, "currency_not_supported",
         "/amount/currency"),
        ({"provider": "alipay", "recipient": {"type": "alipay_logon_id", "value": "a@b.cn"},
          "amount": {"value": "1.00", "currency": "CNY"}}, 422, "recipient_name_required",
         "/recipient/name"),
        ({"provider": "alipay", "recipient": {"type": "alipay_user_id", "value": "12345"},
          "amount": {"value": "1.00", "currency": "CNY"}}, 422, "recipient_invalid",
         "/recipient"),
    ],
)  # fmt: skip
def test_bad_requests_are_refused_before_any_money_is_held(
    client: Any,
    channel: Any,
    customer: str,
    core_simulator: Any,
    changes: dict[str, Any],
    status: int,
    code: str,
    pointer: str,
) -> None:
    response = create(client, channel, payload(customer, **changes))

    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["code"] == code
    assert any(error.get("pointer") == pointer for error in problem.get("errors", [])), problem
    assert core_simulator.ledger.holds(account=customer) == []


def test_an_idempotency_key_replays_the_payout(
    client: Any, channel: Any, customer: str, gsma_sandbox: Any
) -> None:
    key = str(uuid.uuid4())
    first = create(client, channel, payload(customer), key)
    sent = gsma_sandbox.request_count("disbursement")
    again = create(client, channel, payload(customer), key)
    changed = create(client, channel, payload(customer, description="other"), key)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert gsma_sandbox.request_count("disbursement") == sent  # not sent twice
    assert changed.status_code == 422


def test_payouts_belong_to_their_channel(
    client: Any, channel: Any, make_partner: Any, customer: str
) -> None:
    payout = create(client, channel, payload(customer)).json()
    other = make_partner(kind="bank_channel")

    assert client.get(f"/v1/payouts/{payout['id']}", headers=other.auth).status_code == 404
    assert client.get("/v1/payouts", headers=other.auth).json()["data"] == []


def test_listing_pages_and_filters(client: Any, channel: Any, core: Any, gsma_sandbox: Any) -> None:
    rich = core.open_account("Fatuma Ali", "KES", balance="5000.00")
    poor = core.open_account("Fatuma Ali", "KES", balance="1.00")
    ids = [
        create(client, channel, payload(rich, partner_reference=f"ref-{n}")).json()["id"]
        for n in range(3)
    ]
    failed = create(client, channel, payload(poor)).json()

    first = client.get("/v1/payouts", headers=channel.auth, params={"limit": 2}).json()
    rest = client.get(
        "/v1/payouts", headers=channel.auth, params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [p["id"] for p in first["data"] + rest["data"]] == [failed["id"], *reversed(ids)]
    assert first["has_more"] and not rest["has_more"]

    def ids_for(**params: Any) -> list[str]:
        page = client.get("/v1/payouts", headers=channel.auth, params=params).json()
        return [p["id"] for p in page["data"]]

    assert ids_for(status="failed") == [failed["id"]]
    assert ids_for(partner_reference="ref-1") == [ids[1]]
    assert ids_for(provider="gsma_mm", status="processing") == list(reversed(ids))
    assert "history" not in first["data"][0]  # lists are light; GET has the history


# --- refusals by the core ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "status", "code"),
    [("50.00", "ACTIVE", "insufficient_funds"), ("5000.00", "DORMANT", "account_inactive")],
)
def test_a_refused_hold_fails_the_payout_and_the_provider_never_hears_of_it(
    client: Any,
    channel: Any,
    core: Any,
    gsma_sandbox: Any,
    balance: str,
    status: str,
    code: str,
) -> None:
    source = core.open_account("Achieng Njeri", "KES", balance=balance, status=status)
    sent = gsma_sandbox.request_count("disbursement")

    response = create(client, channel, payload(source))

    assert response.status_code == 201
    assert (response.json()["status"], response.json()["failure"]["code"]) == ("failed", code)
    assert gsma_sandbox.request_count("disbursement") == sent


def test_core_unavailable_for_the_hold_fails_cleanly(
    client: Any, channel: Any, customer: str, core_simulator: Any
) -> None:
    with core_simulator.fault("PlaceHold", "unavailable"):
        response = create(client, channel, payload(customer))
    assert response.json()["failure"]["code"] == "core_banking_unavailable"
    assert core_simulator.ledger.holds(account=customer) == []


def test_an_unusable_clearing_account_stops_payouts_before_any_hold(
    client: Any,
    channel: Any,
    customer: str,
    core_simulator: Any,
    container: Any,
    settings: Any,
    gsma_sandbox: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = ProviderRegistry.from_settings(
        settings,
        overrides={"gsma_mm": gsma_settings(gsma_sandbox, clearing_account="KES:9999999999999")},
    )
    monkeypatch.setattr(container.payouts, "providers", wrong)

    response = create(client, channel, payload(customer))

    assert (response.status_code, response.json()["code"]) == (503, "provider_not_configured")
    assert core_simulator.ledger.holds(account=customer) == []
    wrong.close()


def test_a_hold_whose_answer_was_lost_is_released_and_nothing_is_sent(
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
    sent = gsma_sandbox.request_count("disbursement")
    with core_simulator.fault("PlaceHold", "drop"):  # placed, but the answer never arrives
        payout = create(client, channel, payload(customer)).json()
    assert payout["status"] == "unknown"
    assert [h["status"] for h in money.holds()] == ["PLACED"]

    container.payout_recovery.run()  # too early: a slow core may still be working
    assert get(client, channel, payout["id"])["status"] == "unknown"
    clock.advance(stale(settings))
    container.payout_recovery.run()

    done = get(client, channel, payout["id"])
    assert (done["status"], done["failure"]["code"]) == ("failed", "hold_outcome_unknown")
    money.assert_not_paid(payout["id"])
    assert gsma_sandbox.request_count("disbursement") == sent


# --- a capture in doubt --------------------------------------------------------------------------


@pytest.mark.parametrize("booked", [True, False])
def test_a_lost_capture_is_resolved_by_asking_the_core_never_by_posting_twice(
    client: Any,
    channel: Any,
    customer: str,
    core: Any,
    core_simulator: Any,
    gsma_sandbox: Any,
    container: Any,
    clock: Any,
    booked: bool,
) -> None:
    money = Money(core, core_simulator, customer)
    payout = create(client, channel, payload(customer)).json()
    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    with core_simulator.fault("PostTransfer", "drop", process=booked):
        deliver(gsma_sandbox, client)
    assert get(client, channel, payout["id"])["status"] == "unknown"
    assert core.postings(payout["id"]) == (1 if booked else 0)
    asked = core_simulator.request_count("GetTransactionStatus")

    clock.advance(seconds=5)
    container.payout_recovery.run()

    assert get(client, channel, payout["id"])["status"] == "succeeded"
    assert core_simulator.request_count("GetTransactionStatus") > asked
    money.assert_paid(payout["id"], "100.00")


def test_concurrent_recovery_workers_capture_once(
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
    payout = create(client, channel, payload(customer)).json()
    clock.advance(seconds=GSMA_PROCESSING_SECONDS + settings.payout_poll_seconds + 1)

    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            start.wait()
            container.payout_recovery.run()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert get(client, channel, payout["id"])["status"] == "succeeded"
    money.assert_paid(payout["id"], "100.00")


# --- the provider: not taken, never received, contradicted ---------------------------------------


def test_an_unavailable_provider_fails_the_payout_and_releases(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any, gsma_sandbox: Any
) -> None:
    money = Money(core, core_simulator, customer)
    with gsma_sandbox.fault("disbursement", "unavailable", times=None):
        payout = create(client, channel, payload(customer)).json()
    assert (payout["status"], payout["failure"]["code"]) == ("failed", "provider_unavailable")
    money.assert_not_paid(payout["id"])


def test_a_payout_the_provider_never_received_is_sent_again_under_the_same_key(
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
    with gsma_sandbox.fault("disbursement", "drop", process=False, times=None):
        payout = create(client, channel, payload(customer)).json()
    assert payout["status"] == "unknown"
    key = container.providers.get("gsma_mm").idempotency_key(payout["id"])
    assert gsma_sandbox.disbursement(key) is None  # lost on the way in

    clock.advance(seconds=5)
    container.payout_recovery.run()  # the provider has no record yet: wait before resending
    assert gsma_sandbox.disbursement(key) is None
    clock.advance(seconds=settings.payout_not_found_after_seconds)
    container.payout_recovery.run()

    assert gsma_sandbox.disbursement(key) is not None
    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    deliver(gsma_sandbox, client)
    done = get(client, channel, payout["id"])
    assert done["status"] == "succeeded"
    assert "provider_resend" in [step["step"] for step in done["history"]]
    money.assert_paid(payout["id"], "100.00")


def _audits(container: Any, payout_id: str) -> list[str]:
    with container.db.read() as session:
        return list(
            session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == payout_id))
        )


def test_a_contradicting_late_answer_never_moves_money_again(
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
    payout = create(client, channel, payload(customer)).json()
    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    deliver(gsma_sandbox, client)

    container.payouts.apply(
        payout["id"],
        PayoutResult(state="failed", provider_status="reversed", failure_code="provider_failed"),
        "test",
    )

    assert get(client, channel, payout["id"])["status"] == "succeeded"
    money.assert_paid(payout["id"], "100.00")  # still captured, never released
    assert "payout.anomaly.provider_contradiction" in _audits(container, payout["id"])


def test_a_different_amount_reported_by_the_provider_stops_for_an_operator(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any, container: Any
) -> None:
    money = Money(core, core_simulator, customer)
    payout = create(client, channel, payload(customer)).json()

    container.payouts.apply(
        payout["id"],
        PayoutResult(
            state="succeeded", provider_status="completed", amount=Amount.parse("1.00", "KES")
        ),
        "test",
    )

    assert get(client, channel, payout["id"])["status"] == "processing"
    assert [h["status"] for h in money.holds()] == ["PLACED"]  # neither captured nor released
    assert core.postings(payout["id"]) == 0
    assert "payout.anomaly.amount_mismatch" in _audits(container, payout["id"])
    with container.db.read() as session:
        row = session.get(Payout, payout["id"])
        assert row is not None and row.next_check_at is None  # not retried automatically


# --- reads, logs, name enquiry -------------------------------------------------------------------


def test_the_payout_view_and_history(
    client: Any, channel: Any, customer: str, gsma_sandbox: Any, clock: Any
) -> None:
    payout = create(
        client, channel, payload(customer, description="Rent", partner_reference="r-9")
    ).json()
    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    deliver(gsma_sandbox, client)
    done = get(client, channel, payout["id"])

    assert done["amount"] == {"value": "100.00", "currency": "KES"}
    assert (done["description"], done["partner_reference"]) == ("Rent", "r-9")
    assert done["failure"] is None and done["completed_at"]
    assert [(h["from"], h["to"], h["step"]) for h in done["history"]] == [
        (None, "created", "requested"),
        ("created", "processing", "hold_placed"),
        ("processing", "processing", "provider_pending"),
        ("processing", "processing", "decided_capture"),
        ("processing", "succeeded", "captured"),
    ]


def test_the_recipients_name_is_kept_in_the_vault_and_never_shown(
    client: Any,
    channel: Any,
    core: Any,
    container: Any,
    captured_logs: Any,
    alipay_sandbox: Any,
    restore_clock: Any,
) -> None:
    source = str(core.open_account("WANG Wei", "CNY", balance="500.00"))
    body = payload(
        source,
        provider="alipay",
        recipient={"type": "alipay_logon_id", "value": "wangwei@example.com", "name": " 王伟 "},
        amount={"value": "12.00", "currency": "CNY"},
    )
    payout = create(client, channel, body).json()

    assert payout["recipient"] == {"type": "alipay_logon_id", "masked": "****.com"}
    assert "王伟" not in str(get(client, channel, payout["id"])) and "王伟" not in captured_logs()
    with container.db.read() as session:
        row = session.get(Payout, payout["id"])
        assert row is not None
        stored = container.vault.reveal(session, row.recipient_entry_id)
    assert "王伟" in stored and "wangwei@example.com" in stored and " 王伟 " not in stored
    # The provider got the cleaned name with the identifier: the sandbox, which checks it
    # against the account holder, pays.
    restore_clock.advance(seconds=CN_PROCESSING_SECONDS)
    assert [r.answers for r in deliver_posts(alipay_sandbox, client)] == [["success"]]
    assert get(client, channel, payout["id"])["status"] == "succeeded"


def test_logs_never_show_the_account_or_the_wallet(
    client: Any,
    channel: Any,
    customer: str,
    gsma_sandbox: Any,
    clock: Any,
    captured_logs: Any,
) -> None:
    create(client, channel, payload(customer))
    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    deliver(gsma_sandbox, client)

    logs = captured_logs()
    assert "payout_created" in logs and "provider_call" in logs
    assert customer not in logs
    assert WALLET not in logs and WALLET.lstrip("+") not in logs


def test_provider_calls_and_payouts_are_measured(
    client: Any, channel: Any, customer: str, gsma_sandbox: Any, container: Any, clock: Any
) -> None:
    create(client, channel, payload(customer))
    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    deliver(gsma_sandbox, client)
    container.payout_recovery.run()

    metrics = client.get("/metrics").text
    assert (
        'gateway_provider_requests_total{operation="disbursement",outcome="ok",provider="gsma_mm"}'
        in metrics
    )
    assert 'gateway_payouts_total{provider="gsma_mm",status="succeeded"}' in metrics
    assert 'gateway_payouts_open{status="unknown"}' in metrics
    assert 'gateway_provider_webhooks_total{outcome="applied",provider="gsma_mm"}' in metrics


def test_name_enquiry(client: Any, channel: Any, make_partner: Any) -> None:
    found = client.get("/v1/providers/gsma_mm/accounts/%2B254712345601/name", headers=channel.auth)
    missing = client.get(
        "/v1/providers/gsma_mm/accounts/%2B254700000000/name", headers=channel.auth
    )
    unknown = client.get("/v1/providers/paypal/accounts/1/name", headers=channel.auth)
    wallet = client.get(
        "/v1/providers/gsma_mm/accounts/%2B254712345601/name",
        headers=make_partner(kind="wallet").auth,
    )

    assert found.status_code == 200, found.text
    assert found.json() == {
        "provider": "gsma_mm",
        "account": {"type": "msisdn", "masked": "****5601"},
        "name": {"full": "Wanjiru Kamau", "given": "Wanjiru", "family": "Kamau"},
    }
    assert (missing.status_code, missing.json()["code"]) == (422, "recipient_not_found")
    assert unknown.status_code == 404
    assert wallet.status_code == 403


def test_the_customer_is_debited_only_on_success(
    client: Any, channel: Any, customer: str, core: Any, gsma_sandbox: Any, clock: Any
) -> None:
    before = Decimal(core.available(customer))
    payout = send_payout(client, channel, customer, amount="10.00").json()
    assert Decimal(core.available(customer)) == before - Decimal("10.00")  # held
    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    deliver(gsma_sandbox, client)
    assert get(client, channel, payout["id"])["status"] == "succeeded"
    assert Decimal(core.available(customer)) == before - Decimal("10.00")  # held, then captured
