"""End to end through Alipay: gateway -> core simulator (hold) -> Alipay sandbox
(`alipay.fund.trans.uni.transfer`, RSA2-signed calls and answers) -> RSA2-signed notification
(`alipay.fund.trans.order.changed`) -> capture. Each test ends with the balances at the core
simulator: the customer debited once or not at all, the Alipay clearing account credited by
the same amount, exactly one capture or release.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.base import ProviderRefs
from adapters.providers.alipay import AlipayProvider, AlipaySettings
from adapters.providers.alipay.webhooks import notification
from adapters.providers.alipay_sandbox import SEED_TRADE_NO, AlipaySandbox
from gateway.domain.money import Money as Amount
from tests.conftest import ALIPAY_CLEARING_ACCOUNT, CN_PROCESSING_SECONDS, alipay_settings
from tests.event_schemas import assert_event_matches_schema
from tests.payouts import Money, deliver_posts, get, send_cn_payout

pytestmark = pytest.mark.usefixtures("restore_clock")
WANG_WEI = "2088102000000001"
ZHANG_WEI = "2088102000000003"  # blocked


@pytest.fixture
def channel(make_partner: Any) -> Any:
    return make_partner(kind="bank_channel")


@pytest.fixture
def customer(core: Any) -> str:
    return str(core.open_account("WANG Wei", "CNY", balance="5000.00"))


def pay(
    client: Any, channel: Any, customer: str, *, kind: str = "alipay_user_id",
    value: str = WANG_WEI, name: str | None = None, amount: str = "100.00",
) -> Any:  # fmt: skip
    recipient = {"type": kind, "value": value, **({"name": name} if name else {})}
    return send_cn_payout(
        client, channel, customer, provider="alipay", recipient=recipient, amount=amount
    )


def test_payout_is_held_sent_notified_and_captured(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    alipay_sandbox: Any, clock: Any,
) -> None:  # fmt: skip
    books = Money(core, core_simulator, customer, clearing=ALIPAY_CLEARING_ACCOUNT)
    account_before = alipay_sandbox.balance(WANG_WEI)

    response = pay(client, channel, customer, amount="250.00")

    assert response.status_code == 201, response.text
    payout = response.json()
    assert payout["status"] == "processing"  # Alipay answered DEALING
    assert [h["status"] for h in books.holds()] == ["PLACED"]
    order = alipay_sandbox.order(payout["id"].replace("_", ""))
    assert (order.status, order.amount, order.identity_type) == ("DEALING", 25000, "ALIPAY_USER_ID")

    clock.advance(seconds=CN_PROCESSING_SECONDS)
    delivered = deliver_posts(alipay_sandbox, client)

    assert [(r.statuses, r.answers) for r in delivered] == [([200], ["success"])]
    done = get(client, channel, payout["id"])
    assert done["status"] == "succeeded"
    assert done["provider_reference"] == order.order_id
    books.assert_paid(payout["id"], "250.00")
    assert alipay_sandbox.balance(WANG_WEI) == account_before + 25000
    assert alipay_sandbox.request_count("transfer_query") == 0  # the signed notice sufficed


def test_a_synchronous_success_is_captured_at_once(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    alipay_sandbox: Any, clock: Any,
) -> None:  # fmt: skip
    """DIRECT_TRANSFER usually answers SUCCESS right away; the notification that follows is
    taken and changes nothing."""
    books = Money(core, core_simulator, customer, clearing=ALIPAY_CLEARING_ACCOUNT)
    previous = alipay_sandbox.processing_delay
    alipay_sandbox.processing_delay = previous * 0
    try:
        payout = pay(client, channel, customer, amount="12.30").json()
    finally:
        alipay_sandbox.processing_delay = previous

    assert payout["status"] == "succeeded"
    books.assert_paid(payout["id"], "12.30")
    assert [r.answers for r in deliver_posts(alipay_sandbox, client)] == [["success"]]
    books.assert_paid(payout["id"], "12.30")


def test_a_signed_refusal_fails_the_payout_and_releases_the_hold(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    alipay_sandbox: Any,
) -> None:  # fmt: skip
    books = Money(core, core_simulator, customer, clearing=ALIPAY_CLEARING_ACCOUNT)

    payout = pay(client, channel, customer, value="2088102000009999").json()  # no such user

    assert (payout["status"], payout["failure"]["code"]) == ("failed", "recipient_not_found")
    books.assert_not_paid(payout["id"])
    assert [h["status"] for h in books.holds()] == ["RELEASED"]


def test_logon_ids_need_the_holders_name(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    alipay_sandbox: Any, clock: Any,
) -> None:  # fmt: skip
    books = Money(core, core_simulator, customer, clearing=ALIPAY_CLEARING_ACCOUNT)

    refused = pay(client, channel, customer, kind="alipay_logon_id", value="wangwei@example.com")
    assert refused.status_code == 422
    assert refused.json()["code"] == "recipient_name_required"
    assert refused.json()["errors"][0]["pointer"] == "/recipient/name"
    assert Decimal(core.available(customer)) == books.customer_before  # nothing held

    wrong = pay(
        client, channel, customer, kind="alipay_logon_id", value="wangwei@example.com",
        name="王五",
    ).json()  # fmt: skip
    assert (wrong["status"], wrong["failure"]["code"]) == ("failed", "recipient_name_mismatch")
    books.assert_not_paid(wrong["id"])

    other = str(core.open_account("LI Na", "CNY", balance="500.00"))
    books = Money(core, core_simulator, other, clearing=ALIPAY_CLEARING_ACCOUNT)
    right = pay(
        client, channel, other, kind="alipay_logon_id", value="wangwei@example.com", name="王伟"
    ).json()
    clock.advance(seconds=CN_PROCESSING_SECONDS)
    deliver_posts(alipay_sandbox, client)
    assert get(client, channel, right["id"])["status"] == "succeeded"
    books.assert_paid(right["id"], "100.00")


def test_a_failure_reported_by_notification_releases_the_hold(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    alipay_sandbox: Any, clock: Any,
) -> None:  # fmt: skip
    books = Money(core, core_simulator, customer, clearing=ALIPAY_CLEARING_ACCOUNT)
    alipay_sandbox.inject("transfer", "fail", sub_code="PAYEE_ACCOUNT_STATUS_ERROR")
    payout = pay(client, channel, customer).json()
    assert payout["status"] == "processing"

    clock.advance(seconds=CN_PROCESSING_SECONDS)
    deliver_posts(alipay_sandbox, client)

    done = get(client, channel, payout["id"])
    assert (done["status"], done["failure"]["code"]) == ("failed", "recipient_not_permitted")
    books.assert_not_paid(payout["id"])
    assert [h["status"] for h in books.holds()] == ["RELEASED"]


def test_a_forged_notification_is_refused_with_401_and_changes_nothing(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    alipay_sandbox: Any, container: Any, clock: Any,
) -> None:  # fmt: skip
    books = Money(core, core_simulator, customer, clearing=ALIPAY_CLEARING_ACCOUNT)
    alipay_sandbox.inject("transfer", "forged_callback")
    payout = pay(client, channel, customer).json()
    out_biz_no = payout["id"].replace("_", "")

    # Someone claims the transfer failed, with the right app id, signed by another key...
    body = notification(
        {
            "notify_id": secrets.token_hex(16),
            "msg_method": "alipay.fund.trans.order.changed",
            "app_id": alipay_sandbox.app_id,
            "charset": "utf-8",
            "version": "1.1",
            "biz_content": f'{{"out_biz_no":"{out_biz_no}","status":"FAIL",'
            '"error_code":"PAYEE_ACCOUNT_STATUS_ERROR"}',
        },
        rsa.generate_private_key(65537, 2048),
    )
    response = client.post(
        "/v1/providers/alipay/webhooks",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        content=body,
    )

    assert response.status_code == 401
    assert response.text != "success"  # anything else makes Alipay send again
    assert response.json()["code"] == "webhook_verification_failed"
    assert get(client, channel, payout["id"])["status"] == "processing"
    assert core.postings(payout["id"]) == 0
    assert [h["status"] for h in books.holds()] == ["PLACED"]

    # ...then the transfer succeeds: the genuine notice is taken, the sandbox's forgery refused.
    clock.advance(seconds=CN_PROCESSING_SECONDS)
    delivered = deliver_posts(alipay_sandbox, client)

    assert sorted((r.forged, r.statuses[0]) for r in delivered) == [(False, 200), (True, 401)]
    assert get(client, channel, payout["id"])["status"] == "succeeded"
    books.assert_paid(payout["id"], "100.00")
    rejected = [
        n
        for n in container.provider_webhooks.recent("alipay", limit=20)
        if n["outcome"] == "rejected"
    ]
    assert {n["reason"] for n in rejected} >= {"wrong_key"}


def test_an_unknown_outcome_is_settled_by_the_notification(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    alipay_sandbox: Any, clock: Any,
) -> None:  # fmt: skip
    """Alipay carried the transfer out but answered 20000 (service unavailable): the outcome
    is unknown, the money stays held, and the notification settles it."""
    books = Money(core, core_simulator, customer, clearing=ALIPAY_CLEARING_ACCOUNT)
    alipay_sandbox.inject("transfer", "error", times=None)

    payout = pay(client, channel, customer).json()

    assert payout["status"] == "unknown"
    assert [h["status"] for h in books.holds()] == ["PLACED"]
    assert core.postings(payout["id"]) == 0
    alipay_sandbox.reset_faults()

    clock.advance(seconds=CN_PROCESSING_SECONDS)
    deliver_posts(alipay_sandbox, client)

    done = get(client, channel, payout["id"])
    assert done["status"] == "succeeded"
    books.assert_paid(payout["id"], "100.00")
    assert len([o for o in alipay_sandbox.ledger.orders.values()
                if o.out_biz_no == payout["id"].replace("_", "")]) == 1  # fmt: skip


def test_a_timeout_then_the_status_query(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any,
    alipay_sandbox: Any, container: Any, settings: Any, clock: Any,
) -> None:  # fmt: skip
    """The POST is carried out but its answer comes too late (both attempts carry the same
    out_biz_no: one order); no notification; polling settles the payout."""
    books = Money(core, core_simulator, customer, clearing=ALIPAY_CLEARING_ACCOUNT)
    impatient = AlipayProvider(
        AlipaySettings(
            **alipay_settings(alipay_sandbox, read_timeout_seconds=0.3, retry_attempts=2)
        ),
        container.providers.context,
    )
    previous = container.providers.replace("alipay", impatient)
    try:
        with alipay_sandbox.fault("transfer", "timeout", seconds=2, times=2):
            payout = pay(client, channel, customer).json()
    finally:
        container.providers.replace("alipay", previous)
        impatient.close()

    assert payout["status"] == "unknown"
    out_biz_no = payout["id"].replace("_", "")
    order = alipay_sandbox.order(out_biz_no)
    assert order is not None
    order.callback_mode = "drop"  # and its notification is lost: only polling can tell

    clock.advance(seconds=CN_PROCESSING_SECONDS + settings.payout_poll_seconds)
    container.payout_recovery.run()

    assert get(client, channel, payout["id"])["status"] == "succeeded"
    books.assert_paid(payout["id"], "100.00")


def test_refund_notifications_are_recorded_and_acknowledged(
    client: Any, alipay_sandbox: Any, container: Any
) -> None:
    adapter = container.providers.get("alipay")
    reference = f"rf_{secrets.token_hex(8)}"
    result = adapter.refund(
        ProviderRefs("", transaction_reference=SEED_TRADE_NO),
        Amount.parse("1.00", "CNY"),
        reference=reference,
    )
    assert (result.state, result.amount) == ("succeeded", Amount.parse("1.00", "CNY"))

    delivered = deliver_posts(alipay_sandbox, client)

    assert [r.answers for r in delivered] == [["success"]]
    recorded = container.provider_webhooks.recent("alipay", limit=5)[0]
    assert (recorded["outcome"], recorded["payout_id"]) == ("recorded", None)
    again = adapter.refund_status(
        ProviderRefs("", transaction_reference=SEED_TRADE_NO), reference=reference
    )
    assert again.state == "succeeded"


def test_payout_events_carry_the_snapshot(
    client: Any, channel: Any, customer: str, alipay_sandbox: Any, clock: Any
) -> None:
    payout = pay(client, channel, customer).json()
    clock.advance(seconds=CN_PROCESSING_SECONDS)
    deliver_posts(alipay_sandbox, client)

    events = client.get(
        "/v1/events", headers=channel.auth, params={"type": ["payout.succeeded"]}
    ).json()["data"]
    mine = [e for e in events if e["resource"]["id"] == payout["id"]]
    assert len(mine) == 1
    assert_event_matches_schema(mine[0])
    assert mine[0]["data"]["recipient"] == {"type": "alipay_user_id", "masked": "****0001"}


# --- certificate mode (公钥证书) ---------------------------------------------------------------

KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "alipay" / "test-keys"


@pytest.fixture
def certificate_sandbox(clock: Any, tmp_path: Path) -> Iterator[AlipaySandbox]:
    """An Alipay sandbox whose application signs with certificates: its own throwaway root CA
    (with an ECDSA root in the chain) and the console's files published under `certs/`."""
    keys = tmp_path / "alipay-certificate-sandbox"
    (keys / "sandbox").mkdir(parents=True)
    (keys / "app_private_key.pem").write_bytes((KEYS / "app_private_key.pem").read_bytes())
    (keys / "sandbox" / "alipay_private_key.pem").write_bytes(
        (KEYS / "alipay_private_key.pem").read_bytes()
    )
    sandbox = AlipaySandbox.from_files(
        keys_dir=keys, certificate_mode=True, clock=clock, processing_delay=CN_PROCESSING_SECONDS
    )
    server = sandbox.serve("127.0.0.1", 0, deliver_callbacks=False)
    sandbox.server = server  # type: ignore[attr-defined]
    sandbox.keys_dir = keys  # type: ignore[attr-defined]
    yield sandbox
    server.shutdown()


def test_a_payout_in_certificate_mode_survives_a_certificate_rotation(
    client: Any, channel: Any, customer: str, core: Any, core_simulator: Any, container: Any,
    certificate_sandbox: AlipaySandbox, clock: Any,
) -> None:  # fmt: skip
    """Held, sent with app_cert_sn and alipay_root_cert_sn (the sandbox refuses anything else),
    answered under alipay_cert_sn; Alipay then rotates its certificate, and the notification
    signed with the new key is verified once the new certificate is found in the directory;
    captured once, and the balances say so."""
    sandbox = certificate_sandbox
    certs = sandbox.certs_dir
    assert certs is not None and sandbox.certificates is not None
    adapter = AlipayProvider(
        AlipaySettings(
            **alipay_settings(
                sandbox,
                alipay_public_keys_dir=None,
                signing_mode="certificate",
                app_cert_file=certs / "appCertPublicKey_2021000100000001.crt",
                alipay_root_cert_file=certs / "alipayRootCert.crt",
                alipay_certs_dir=certs / "alipay-certs",
            )
        ),
        container.providers.context,
    )
    assert adapter.client.certificates is not None
    assert (
        adapter.client.certificates.alipay_root_cert_sn == sandbox.certificates.alipay_root_cert_sn
    )
    previous = container.providers.replace("alipay", adapter)
    try:
        books = Money(core, core_simulator, customer, clearing=ALIPAY_CLEARING_ACCOUNT)
        account_before = sandbox.balance(WANG_WEI)

        payout = pay(client, channel, customer, amount="88.80").json()

        assert payout["status"] == "processing", payout  # DEALING, verified under the cert SN
        assert [h["status"] for h in books.holds()] == ["PLACED"]
        out_biz_no = payout["id"].replace("_", "")
        order = sandbox.order(out_biz_no)
        assert order is not None and order.amount == 8880

        rotated = sandbox.rotate_alipay_certificate()
        assert rotated not in adapter.keys.ids()
        clock.advance(seconds=CN_PROCESSING_SECONDS)
        delivered = deliver_posts(sandbox, client)

        assert [(r.statuses, r.answers) for r in delivered] == [([200], ["success"])]
        assert rotated in adapter.keys.ids()  # found by reading the directory again
        done = get(client, channel, payout["id"])
        assert (done["status"], done["provider_reference"]) == ("succeeded", order.order_id)
        books.assert_paid(payout["id"], "88.80")
        assert sandbox.balance(WANG_WEI) == account_before + 8880
        status = adapter.payout_status(ProviderRefs(out_biz_no))  # answered under the new SN
        assert (status.state, status.amount) == ("succeeded", Amount.parse("88.80", "CNY"))
        assert sandbox.refused == []
    finally:
        container.providers.replace("alipay", previous)
        adapter.close()
