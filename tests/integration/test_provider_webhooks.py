"""Provider notifications in (`PUT|POST /v1/providers/{provider}/webhooks`): verified by the
adapter, recorded for audit, deduplicated, applied once; refused calls change nothing and are
rate-limited; an unsigned notification is only a hint."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from adapters.providers.gsma_mm.webhooks import callback_headers
from gateway.domain.errors import RateLimited
from gateway.security.ratelimit import RateLimiter
from gateway.services.provider_webhooks import ProviderWebhooks, WebhookLimits
from gateway.store.tables import ProviderNotification
from tests.conftest import GSMA_CALLBACK_KEY, GSMA_PROCESSING_SECONDS
from tests.payouts import Money, deliver, get, send_payout

URL = "/v1/providers/gsma_mm/webhooks"


# These tests move the session clock (provider processing, polling windows): put it back.
pytestmark = pytest.mark.usefixtures("restore_clock")


@pytest.fixture
def channel(make_partner: Any) -> Any:
    return make_partner(kind="bank_channel")


@pytest.fixture
def customer(core: Any) -> str:
    return str(core.open_account("Kipchoge Mutai", "KES", balance="5000.00"))


def callback(
    container: Any, clock: Any, payout_id: str, document: dict[str, Any], **options: Any
) -> tuple[dict[str, str], bytes]:
    key = container.providers.get("gsma_mm").idempotency_key(payout_id)
    body = json.dumps(document).encode()
    options.setdefault("api_key", GSMA_CALLBACK_KEY)
    return callback_headers(body, correlation_id=key, at=clock.now(), **options), body


def stored(container: Any, **where: Any) -> list[ProviderNotification]:
    with container.db.read() as session:
        query = select(ProviderNotification).order_by(ProviderNotification.id)
        for name, value in where.items():
            query = query.where(getattr(ProviderNotification, name) == value)
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows


def test_a_refused_call_is_recorded_without_its_credentials_and_changes_nothing(
    client: Any, channel: Any, customer: str, container: Any, clock: Any
) -> None:
    payout = send_payout(client, channel, customer).json()
    headers, body = callback(
        container, clock, payout["id"], {"transactionStatus": "completed"}, api_key="guess"
    )
    headers["X-Request-Id"] = f"forgery-{uuid.uuid4()}"

    response = client.put(URL, headers=headers, content=body)

    assert response.status_code == 401
    assert get(client, channel, payout["id"])["status"] == "processing"
    [row] = [
        r
        for r in stored(container, outcome="rejected")
        if r.headers.get("x-request-id") == headers["X-Request-Id"]
    ]
    assert row.reason == "api_key_mismatch" and row.event_id is None
    assert "x-api-key" not in row.headers  # never keep credentials
    assert row.body == body.decode() and row.body_bytes == len(body)


def test_refused_calls_beyond_the_budget_get_429_and_are_not_stored(
    container: Any, clock: Any
) -> None:
    webhooks = ProviderWebhooks(
        container.db,
        clock,
        container.providers,
        container.payouts,
        RateLimiter(None),
        WebhookLimits(rate="100/second", invalid_rate="2/minute", max_bytes=65536),
    )
    marker = f"budget-{uuid.uuid4()}"
    headers = {"X-Request-Id": marker, "Content-Type": "application/json"}
    outcomes = []
    for _ in range(4):
        try:
            webhooks.receive("gsma_mm", "PUT", headers, b"{}")
        except RateLimited:
            outcomes.append(429)
        except Exception as exc:  # the WebhookVerificationError
            outcomes.append(getattr(exc, "status", 0))

    assert outcomes == [401, 401, 429, 429]
    recorded = [r for r in stored(container) if r.headers.get("x-request-id") == marker]
    assert len(recorded) == 2


def test_every_call_counts_against_the_providers_rate(container: Any, clock: Any) -> None:
    webhooks = ProviderWebhooks(
        container.db,
        clock,
        container.providers,
        container.payouts,
        RateLimiter(None),
        WebhookLimits(rate="1/minute", invalid_rate="100/minute", max_bytes=65536),
    )
    with pytest.raises(Exception, match="missing_correlation_id"):
        webhooks.receive("gsma_mm", "PUT", {"X-API-Key": GSMA_CALLBACK_KEY}, b"{}")
    with pytest.raises(RateLimited):
        webhooks.receive("gsma_mm", "PUT", {}, b"{}")


def test_one_providers_flood_of_forgeries_does_not_block_another_provider(
    container: Any, clock: Any
) -> None:
    """Both budgets (all calls, refused calls) are per provider: forged GSMA callbacks running
    into 429 leave Alipay's genuine notifications, and Alipay's own refusal budget, untouched."""
    from adapters.providers.alipay.webhooks import notification
    from adapters.providers.rsa_keys import load_private_key
    from tests.conftest import FIXTURES

    webhooks = ProviderWebhooks(
        container.db,
        clock,
        container.providers,
        container.payouts,
        RateLimiter(None),
        WebhookLimits(rate="4/minute", invalid_rate="2/minute", max_bytes=65536),
    )

    def outcome(provider: str, headers: dict[str, str], body: bytes) -> int | str:
        method = "PUT" if provider == "gsma_mm" else "POST"
        try:
            return webhooks.receive(provider, method, headers, body).outcome
        except RateLimited:
            return 429
        except Exception as exc:  # the WebhookVerificationError
            return int(getattr(exc, "status", 0))

    forged = {"X-Request-Id": f"flood-{uuid.uuid4()}", "Content-Type": "application/json"}
    flood = [outcome("gsma_mm", forged, b"{}") for _ in range(6)]
    assert flood == [401, 401, 429, 429, 429, 429]  # refusal budget, then the call budget

    alipay_key = load_private_key(FIXTURES / "alipay" / "test-keys" / "alipay_private_key.pem")
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}

    def genuine() -> bytes:
        params = {"notify_type": "trade_status_sync", "notify_id": f"n-{uuid.uuid4().hex}",
                  "app_id": "2021000100000001", "charset": "utf-8",
                  "trade_status": "TRADE_SUCCESS"}  # fmt: skip
        return notification(params, alipay_key)

    assert outcome("alipay", form, genuine()) == "recorded"
    assert outcome("alipay", form, genuine()) == "recorded"
    # Alipay's own refusal budget is whole: a forgery of its own is refused, not rate-limited.
    assert outcome("alipay", form, genuine().replace(b"TRADE_SUCCESS", b"TRADE_CLOSED")) == 401
    assert outcome("gsma_mm", forged, b"{}") == 429  # while GSMA stays limited
    flood_rows = [r for r in stored(container) if r.headers.get("x-request-id") == forged[
        "X-Request-Id"]]  # fmt: skip
    assert len(flood_rows) == 2  # only what the refusal budget let through is stored


def test_unknown_providers_and_oversized_bodies(client: Any, container: Any) -> None:
    assert client.put("/v1/providers/paypal/webhooks", content=b"{}").status_code == 404
    huge = b"{" + b" " * 70_000 + b"}"
    response = client.put(URL, content=huge, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (413, "notification_too_large")
    assert any(r.reason == "body_too_large" for r in stored(container, outcome="rejected"))


def test_a_genuine_callback_is_only_a_hint(
    client: Any,
    channel: Any,
    customer: str,
    core: Any,
    core_simulator: Any,
    container: Any,
    clock: Any,
) -> None:
    """The provider's own key, but a claim the provider's status API does not back (the
    disbursement is still pending there): nothing moves."""
    money = Money(core, core_simulator, customer)
    payout = send_payout(client, channel, customer).json()
    headers, body = callback(container, clock, payout["id"], {"transactionStatus": "completed"})

    response = client.put(URL, headers=headers, content=body)

    assert response.status_code == 204
    assert get(client, channel, payout["id"])["status"] == "processing"
    assert [h["status"] for h in money.holds()] == ["PLACED"]
    assert core.postings(payout["id"]) == 0


def test_a_callback_that_cannot_be_checked_now_is_deferred_then_applied(
    client: Any,
    channel: Any,
    customer: str,
    core: Any,
    core_simulator: Any,
    gsma_sandbox: Any,
    clock: Any,
) -> None:
    money = Money(core, core_simulator, customer)
    payout = send_payout(client, channel, customer).json()
    clock.advance(seconds=GSMA_PROCESSING_SECONDS)

    with gsma_sandbox.fault("request_state", "unavailable", times=None):
        first = deliver(gsma_sandbox, client)
    assert first[0].statuses == [503]  # the provider will try again
    assert get(client, channel, payout["id"])["status"] == "processing"

    clock.advance(seconds=5)
    second = deliver(gsma_sandbox, client)

    assert second[0].statuses == [503, 204]  # handled now, not taken for a duplicate
    assert get(client, channel, payout["id"])["status"] == "succeeded"
    money.assert_paid(payout["id"], "100.00")


def test_a_callback_for_no_payout_of_ours(client: Any, clock: Any, container: Any) -> None:
    body = b'{"transactionStatus": "completed", "transactionReference": "MMNOBODY"}'
    headers = callback_headers(
        body, correlation_id=str(uuid.uuid4()), at=clock.now(), api_key=GSMA_CALLBACK_KEY
    )
    first = client.put(URL, headers=headers, content=body)
    again = client.put(URL, headers=headers, content=body)
    assert (first.status_code, again.status_code) == (404, 404)
    assert any(r.reason == "no such payout" for r in stored(container, outcome="ignored"))


def test_the_same_callback_twice_at_once_is_applied_once(
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
    gsma_sandbox.inject("disbursement", "drop_callback")
    payout = send_payout(client, channel, customer).json()
    clock.advance(seconds=GSMA_PROCESSING_SECONDS)
    key = container.providers.get("gsma_mm").idempotency_key(payout["id"])
    document = gsma_sandbox.disbursement(key).transaction()
    headers, body = callback(container, clock, payout["id"], document)

    start = threading.Barrier(2)
    outcomes: list[str] = []

    def receive() -> None:
        start.wait()
        ack = container.provider_webhooks.receive("gsma_mm", "PUT", headers, body)
        outcomes.append(ack.outcome)

    threads = [threading.Thread(target=receive) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes) == ["applied", "duplicate"]
    money.assert_paid(payout["id"], "100.00")
    rows = [r for r in stored(container, payout_id=payout["id"]) if r.event_id]
    assert len(rows) == 1 and rows[0].outcome == "applied"


# --- providers that expect their own answer (WeChat Pay, Alipay) ---------------------------------


def _wechatpay_notification(container: Any, clock: Any, resource: dict[str, Any]) -> Any:
    from adapters.providers.rsa_keys import load_private_key
    from adapters.providers.wechatpay.webhooks import notification
    from tests.conftest import FIXTURES, WECHATPAY_APIV3_KEY

    adapter = container.providers.get("wechatpay")
    return notification(
        {"mch_id": adapter.credentials.mchid, **resource},
        event_type="MCHTRANSFER.BILL.FINISHED",
        apiv3_key=WECHATPAY_APIV3_KEY.encode(),
        key=load_private_key(
            FIXTURES / "wechatpay" / "test-keys" / "wechatpay_public_key_private.pem"
        ),
        serial="PUB_KEY_ID_0119000000010000000000000001",
        timestamp=int(clock.now().timestamp()),
    )


def test_wechatpay_gets_its_failure_body_for_a_notification_of_no_payout(
    client: Any, container: Any, clock: Any
) -> None:
    headers, body = _wechatpay_notification(
        container, clock, {"out_bill_no": "po01nosuchpayout0000000000000", "state": "SUCCESS"}
    )
    response = client.post("/v1/providers/wechatpay/webhooks", headers=headers, content=body)

    assert response.status_code == 404
    assert response.json() == {"code": "FAIL", "message": "No payout matches the notification"}
    again = client.post("/v1/providers/wechatpay/webhooks", headers=headers, content=body)
    assert again.status_code == 404  # stays ignored; WeChat Pay gives up after its retries
    assert stored(container, provider="wechatpay", outcome="ignored")


def test_wechatpay_notifications_of_other_events_are_recorded_with_an_empty_204(
    client: Any, container: Any, clock: Any
) -> None:
    from adapters.providers.rsa_keys import load_private_key
    from adapters.providers.wechatpay.webhooks import notification
    from tests.conftest import FIXTURES, WECHATPAY_APIV3_KEY

    headers, body = notification(
        {"mchid": "1900000001", "out_trade_no": "order-1", "trade_state": "SUCCESS"},
        event_type="TRANSACTION.SUCCESS",
        apiv3_key=WECHATPAY_APIV3_KEY.encode(),
        key=load_private_key(
            FIXTURES / "wechatpay" / "test-keys" / "wechatpay_public_key_private.pem"
        ),
        serial="PUB_KEY_ID_0119000000010000000000000001",
        timestamp=int(clock.now().timestamp()),
        original_type="transaction",
    )
    response = client.post("/v1/providers/wechatpay/webhooks", headers=headers, content=body)

    assert (response.status_code, response.content) == (204, b"")
    row = stored(container, provider="wechatpay", outcome="recorded")[-1]
    assert row.reason == "other notification" and row.payout_id is None
    # Kept so an operator can check it again: the signature headers, not the body's secret key.
    assert row.headers["wechatpay-signature"] == headers["Wechatpay-Signature"]
    duplicate = client.post("/v1/providers/wechatpay/webhooks", headers=headers, content=body)
    assert duplicate.status_code == 204


def test_alipay_gets_success_and_refusals_a_problem(client: Any, container: Any) -> None:
    from adapters.providers.alipay.webhooks import notification
    from adapters.providers.rsa_keys import load_private_key
    from tests.conftest import FIXTURES

    alipay_key = load_private_key(FIXTURES / "alipay" / "test-keys" / "alipay_private_key.pem")
    params = {"notify_type": "trade_status_sync", "notify_id": f"n-{uuid.uuid4().hex}",
              "app_id": "2021000100000001", "charset": "utf-8", "trade_status": "TRADE_SUCCESS",
              "subject": "语雀空间 500人规模"}  # fmt: skip
    body = notification(params, alipay_key)
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}

    taken = client.post("/v1/providers/alipay/webhooks", headers=form, content=body)
    assert (taken.status_code, taken.text) == (200, "success")
    assert taken.headers["content-type"].startswith("text/plain")
    assert (
        client.post("/v1/providers/alipay/webhooks", headers=form, content=body).text == "success"
    )

    forged = body.replace(b"TRADE_SUCCESS", b"TRADE_CLOSED")
    refused = client.post("/v1/providers/alipay/webhooks", headers=form, content=forged)
    assert refused.status_code == 401
    assert refused.json()["code"] == "webhook_verification_failed"
    assert stored(container, provider="alipay", outcome="rejected")[-1].reason == "content_mismatch"
