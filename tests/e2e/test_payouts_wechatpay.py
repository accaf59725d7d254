"""End to end through WeChat Pay: gateway -> core simulator (hold) -> WeChat Pay sandbox
(商家转账, signed requests and answers) -> signed, encrypted notification -> capture. Each test
ends with the balances at the core simulator: the customer debited once or not at all, the
WeChat Pay clearing account credited by the same amount, exactly one capture or release.

In process and fast: the sandbox serves on loopback, notifications are delivered when the test
says so, time is moved instead of waited for, recovery is run explicitly.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.base import ProviderRefs
from adapters.providers.wechatpay.webhooks import notification
from adapters.providers.wechatpay_sandbox import SEED_TRANSACTION_ID
from gateway.domain.money import Money as Amount
from tests.conftest import (
    CN_PROCESSING_SECONDS,
    WECHATPAY_APIV3_KEY,
    WECHATPAY_CLEARING_ACCOUNT,
)
from tests.event_schemas import assert_event_matches_schema
from tests.payouts import Money, deliver_posts, get, send_cn_payout

pytestmark = pytest.mark.usefixtures("restore_clock")
WANG_WEI = "oWxSandbox_WangWei_000000001"
ZHANG_WEI = "oWxSandbox_ZhangWei_00000003"  # frozen
LIU_YANG = "oWxSandbox_LiuYang_000000004"  # confirms every transfer


@pytest.fixture
def channel(make_partner: Any) -> Any:
    return make_partner(kind="bank_channel")


@pytest.fixture
def customer(core: Any) -> str:
    return str(core.open_account("WANG Wei", "CNY", balance="5000.00"))


def pay(client: Any, channel: Any, customer: str, openid: str = WANG_WEI, **extra: Any) -> Any:
    return send_cn_payout(
        client,
        channel,
        customer,
        provider="wechatpay",
        recipient={"type": "openid", "value": openid, **extra.pop("recipient", {})},
        **extra,
    )


def test_payout_is_held_sent_notified_and_captured(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    wechatpay_sandbox: Any, clock: Any,
) -> None:  # fmt: skip
    books = Money(core, core_simulator, customer, clearing=WECHATPAY_CLEARING_ACCOUNT)
    wallet_before = wechatpay_sandbox.balance(WANG_WEI)

    response = pay(client, channel, customer, amount="250.00")

    assert response.status_code == 201, response.text
    payout = response.json()
    assert payout["status"] == "processing"
    assert payout["recipient"]["type"] == "openid"
    assert Decimal(core.available(customer)) == books.customer_before - Decimal("250.00")
    assert [h["status"] for h in books.holds()] == ["PLACED"]
    bill = wechatpay_sandbox.bill(payout["id"].replace("_", ""))
    assert (bill.state, bill.amount, bill.remark) == ("ACCEPTED", 25000, "Tuition")

    clock.advance(seconds=CN_PROCESSING_SECONDS)
    delivered = deliver_posts(wechatpay_sandbox, client)

    assert [record.statuses for record in delivered] == [[204]]
    done = get(client, channel, payout["id"])
    assert done["status"] == "succeeded"
    assert done["provider_reference"] == bill.transfer_bill_no
    books.assert_paid(payout["id"], "250.00")
    assert wechatpay_sandbox.balance(WANG_WEI) == wallet_before + 25000
    steps = [step["step"] for step in done["history"]]
    assert steps[:2] == ["requested", "hold_placed"]
    assert steps[-2:] == ["decided_capture", "captured"]
    # The notification was signed and sealed: applied as it came, no status query needed.
    assert wechatpay_sandbox.request_count("transfer_status") == 0


def test_a_signed_refusal_fails_the_payout_and_releases_the_hold(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    wechatpay_sandbox: Any,
) -> None:  # fmt: skip
    books = Money(core, core_simulator, customer, clearing=WECHATPAY_CLEARING_ACCOUNT)
    wechatpay_sandbox.inject("transfer", "reject", status=403, code="NOT_ENOUGH")

    payout = pay(client, channel, customer).json()

    assert payout["status"] == "failed"
    assert payout["failure"]["code"] == "provider_insufficient_float"
    books.assert_not_paid(payout["id"])
    assert [h["status"] for h in books.holds()] == ["RELEASED"]


def test_a_failure_reported_by_notification_releases_the_hold(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    wechatpay_sandbox: Any, clock: Any,
) -> None:  # fmt: skip
    books = Money(core, core_simulator, customer, clearing=WECHATPAY_CLEARING_ACCOUNT)
    payout = pay(client, channel, customer, openid=ZHANG_WEI).json()
    assert payout["status"] == "processing"

    clock.advance(seconds=CN_PROCESSING_SECONDS)
    assert [r.statuses for r in deliver_posts(wechatpay_sandbox, client)] == [[204]]

    done = get(client, channel, payout["id"])
    assert (done["status"], done["failure"]["code"]) == ("failed", "recipient_not_permitted")
    books.assert_not_paid(payout["id"])
    assert [h["status"] for h in books.holds()] == ["RELEASED"]


def test_a_forged_notification_is_refused_with_401_and_changes_nothing(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    wechatpay_sandbox: Any, container: Any, clock: Any,
) -> None:  # fmt: skip
    books = Money(core, core_simulator, customer, clearing=WECHATPAY_CLEARING_ACCOUNT)
    wechatpay_sandbox.inject("transfer", "forged_callback")
    payout = pay(client, channel, customer).json()
    out_bill_no = payout["id"].replace("_", "")

    # Before WeChat Pay has done anything, someone claims the transfer failed, with the right
    # serial, the right APIv3 key even, but not WeChat Pay's private key...
    impostor = rsa.generate_private_key(65537, 2048)
    headers, body = notification(
        {"out_bill_no": out_bill_no, "transfer_bill_no": "1330000X", "state": "FAIL",
         "fail_reason": "ACCOUNT_FROZEN", "mch_id": wechatpay_sandbox.mchid},
        event_type="MCHTRANSFER.BILL.FINISHED",
        apiv3_key=WECHATPAY_APIV3_KEY.encode(),
        key=impostor,
        serial=wechatpay_sandbox.platform_key_id,
        timestamp=int(clock.now().timestamp()),
    )  # fmt: skip
    response = client.post("/v1/providers/wechatpay/webhooks", headers=headers, content=body)

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["code"] == "FAIL"  # what WeChat Pay expects on a refusal
    assert get(client, channel, payout["id"])["status"] == "processing"
    assert [h["status"] for h in books.holds()] == ["PLACED"]
    assert core.postings(payout["id"]) == 0

    # ...then the transfer succeeds: the genuine notification is applied, the sandbox's own
    # forgery (the opposite outcome, signed with another key) is refused.
    clock.advance(seconds=CN_PROCESSING_SECONDS)
    delivered = deliver_posts(wechatpay_sandbox, client)

    assert sorted((r.forged, r.statuses[0]) for r in delivered) == [(False, 204), (True, 401)]
    done = get(client, channel, payout["id"])
    assert (done["status"], done["next_action"]) == ("succeeded", None)
    books.assert_paid(payout["id"], "100.00")
    rejected = [
        n
        for n in container.provider_webhooks.recent("wechatpay", limit=20)
        if n["outcome"] == "rejected"
    ]
    assert {n["reason"] for n in rejected} >= {"wrong_key"}


def test_a_stale_notification_is_refused(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    wechatpay_sandbox: Any, clock: Any,
) -> None:  # fmt: skip
    """A genuine notification replayed later than WeChat Pay's 5-minute window."""
    books = Money(core, core_simulator, customer, clearing=WECHATPAY_CLEARING_ACCOUNT)
    payout = pay(client, channel, customer).json()
    clock.advance(seconds=CN_PROCESSING_SECONDS)
    captured: list[tuple[str, dict[str, str], bytes]] = []
    wechatpay_sandbox.deliver_callbacks(lambda url, h, b: captured.append((url, h, b)) or 503)

    clock.advance(minutes=6)
    _url, headers, body = captured[0]
    response = client.post("/v1/providers/wechatpay/webhooks", headers=headers, content=body)

    assert response.status_code == 401
    assert get(client, channel, payout["id"])["status"] == "processing"
    assert core.postings(payout["id"]) == 0
    assert [h["status"] for h in books.holds()] == ["PLACED"]

    # WeChat Pay signs every retry afresh: the next delivery is inside the window again.
    clock.advance(seconds=30)
    assert [r.statuses for r in deliver_posts(wechatpay_sandbox, client)] == [[503, 204]]
    books.assert_paid(payout["id"], "100.00")


def test_an_unverifiable_answer_is_an_unknown_outcome_settled_by_the_status_query(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    wechatpay_sandbox: Any, container: Any, settings: Any, clock: Any,
) -> None:  # fmt: skip
    """WeChat Pay took the transfer but its answer's signature does not verify: the gateway
    believes nothing in it, leaves the money held, and asks (signed answers) later."""
    books = Money(core, core_simulator, customer, clearing=WECHATPAY_CLEARING_ACCOUNT)
    sent_before = wechatpay_sandbox.request_count("transfer")
    wechatpay_sandbox.inject("transfer", "bad_signature")

    payout = pay(client, channel, customer).json()

    assert payout["status"] == "unknown"
    assert [h["status"] for h in books.holds()] == ["PLACED"]
    clock.advance(seconds=CN_PROCESSING_SECONDS + settings.payout_poll_seconds)
    container.payout_recovery.run()  # before the notification: the query settles it

    done = get(client, channel, payout["id"])
    assert done["status"] == "succeeded"
    books.assert_paid(payout["id"], "100.00")
    assert wechatpay_sandbox.request_count("transfer") == sent_before + 1  # never re-sent
    # The notification that arrives afterwards is taken and changes nothing.
    assert [r.statuses for r in deliver_posts(wechatpay_sandbox, client)] == [[204]]
    books.assert_paid(payout["id"], "100.00")


def test_a_lost_notification_is_recovered_by_polling(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    wechatpay_sandbox: Any, container: Any, settings: Any, clock: Any,
) -> None:  # fmt: skip
    books = Money(core, core_simulator, customer, clearing=WECHATPAY_CLEARING_ACCOUNT)
    wechatpay_sandbox.inject("transfer", "drop_callback")
    payout = pay(client, channel, customer, amount="75.50").json()

    clock.advance(seconds=CN_PROCESSING_SECONDS)
    assert deliver_posts(wechatpay_sandbox, client) == []
    clock.advance(seconds=settings.payout_poll_seconds + 1)
    container.payout_recovery.run()

    assert get(client, channel, payout["id"])["status"] == "succeeded"
    books.assert_paid(payout["id"], "75.50")
    container.payout_recovery.run()
    books.assert_paid(payout["id"], "75.50")  # still exactly one capture


def test_a_large_transfer_needs_the_real_name_which_is_sent_encrypted(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    wechatpay_sandbox: Any, clock: Any,
) -> None:  # fmt: skip
    core.deposit(customer, "10000.00")
    books = Money(core, core_simulator, customer, clearing=WECHATPAY_CLEARING_ACCOUNT)

    refused = pay(client, channel, customer, amount="2500.00")

    assert refused.status_code == 422
    assert refused.json()["code"] == "recipient_name_required"
    assert Decimal(core.available(customer)) == books.customer_before  # nothing was held

    payout = pay(client, channel, customer, amount="2500.00", recipient={"name": "王伟"}).json()
    assert payout["status"] == "processing"
    bill = wechatpay_sandbox.bill(payout["id"].replace("_", ""))
    assert bill.user_name == "王伟"  # the sandbox decrypted it with its platform key
    clock.advance(seconds=CN_PROCESSING_SECONDS)
    deliver_posts(wechatpay_sandbox, client)
    books.assert_paid(payout["id"], "2500.00")

    wrong = pay(client, channel, customer, amount="2000.00", recipient={"name": "王五"}).json()
    clock.advance(seconds=CN_PROCESSING_SECONDS)
    deliver_posts(wechatpay_sandbox, client)
    done = get(client, channel, wrong["id"])
    assert (done["status"], done["failure"]["code"]) == ("failed", "recipient_name_mismatch")


def test_a_transfer_waiting_for_the_user_completes_when_confirmed(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    wechatpay_sandbox: Any, clock: Any, container: Any,
) -> None:  # fmt: skip
    books = Money(core, core_simulator, customer, clearing=WECHATPAY_CLEARING_ACCOUNT)
    payout = pay(client, channel, customer, openid=LIU_YANG).json()
    out_bill_no = payout["id"].replace("_", "")
    bill = wechatpay_sandbox.bill(out_bill_no)
    assert bill.state == "WAIT_USER_CONFIRM"
    # The channel gets what the user's WeChat needs to accept it (wx.requestMerchantTransfer).
    action = payout["next_action"]
    assert action["type"] == "recipient_confirmation"
    assert action["provider_action"] == "wechatpay_confirm_receipt"
    assert action["package_info"] == bill.created()["package_info"]
    assert action["mch_id"] == wechatpay_sandbox.mchid and action["app_id"]
    events = client.get(f"/v1/events?resource_id={payout['id']}", headers=channel.auth).json()[
        "data"
    ]
    announced = [e for e in events if e["data"]["next_action"]]
    assert announced and announced[0]["data"]["next_action"] == action
    assert_event_matches_schema(announced[0])

    clock.advance(seconds=CN_PROCESSING_SECONDS)
    assert deliver_posts(wechatpay_sandbox, client) == []
    # A status poll while it waits: WeChat Pay's query answer carries no package_info, and
    # the channel must keep what it needs to ask the user.
    clock.advance(minutes=10)
    container.payout_recovery.run()
    waiting = get(client, channel.renew(), payout["id"])
    assert (waiting["status"], waiting["next_action"]) == ("processing", action)

    wechatpay_sandbox.confirm(out_bill_no)
    clock.advance(seconds=CN_PROCESSING_SECONDS)
    deliver_posts(wechatpay_sandbox, client)

    done = get(client, channel, payout["id"])
    assert (done["status"], done["next_action"]) == ("succeeded", None)
    books.assert_paid(payout["id"], "100.00")


def test_a_transfer_nobody_confirms_is_closed_and_released(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    wechatpay_sandbox: Any, clock: Any,
) -> None:  # fmt: skip
    books = Money(core, core_simulator, customer, clearing=WECHATPAY_CLEARING_ACCOUNT)
    payout = pay(client, channel, customer, openid=LIU_YANG).json()

    clock.advance(hours=24, seconds=1)
    assert [r.statuses for r in deliver_posts(wechatpay_sandbox, client)] == [[204]]

    done = get(client, channel.renew(), payout["id"])
    assert (done["status"], done["failure"]["code"]) == ("failed", "provider_cancelled")
    books.assert_not_paid(payout["id"])


def test_refund_notifications_are_recorded_and_acknowledged(
    client: Any, wechatpay_sandbox: Any, container: Any, clock: Any
) -> None:
    """The payout service does not initiate refunds; a refund made through the adapter is
    reported by WeChat Pay and the gateway records and acknowledges it."""
    adapter = container.providers.get("wechatpay")
    reference = f"rf_{secrets.token_hex(8)}"
    result = adapter.refund(
        ProviderRefs("", transaction_reference=SEED_TRANSACTION_ID),
        Amount.parse("1.00", "CNY"),
        reference=reference,
    )
    assert (result.state, result.request_id) == ("pending", reference)

    clock.advance(seconds=CN_PROCESSING_SECONDS)
    delivered = deliver_posts(wechatpay_sandbox, client)

    assert [r.statuses for r in delivered] == [[204]]
    recorded = container.provider_webhooks.recent("wechatpay", limit=5)[0]
    assert (recorded["outcome"], recorded["payout_id"]) == ("recorded", None)
    assert adapter.refund_status(ProviderRefs(""), reference=reference).state == "succeeded"


def test_payout_events_carry_the_snapshot(
    client: Any, channel: Any, customer: str, wechatpay_sandbox: Any, clock: Any
) -> None:
    payout = pay(client, channel, customer).json()
    clock.advance(seconds=CN_PROCESSING_SECONDS)
    deliver_posts(wechatpay_sandbox, client)

    events = client.get(
        "/v1/events", headers=channel.auth, params={"type": ["payout.succeeded"]}
    ).json()["data"]
    mine = [e for e in events if e["resource"]["id"] == payout["id"]]
    assert len(mine) == 1
    assert_event_matches_schema(mine[0])
    assert mine[0]["data"]["provider"] == "wechatpay"
    assert mine[0]["data"]["amount"] == {"value": "100.00", "currency": "CNY"}
