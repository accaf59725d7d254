"""`wallet-gateway serve` with no base URL for WeChat Pay and Alipay runs their sandboxes
itself (what `make run` gives): the gateway and the sandboxes find each other's keys in the
data directory, a payout goes out signed, the sandbox calls back signed (and, for WeChat Pay,
encrypted) on its own, and the hold is captured into the provider's clearing account at the
embedded core simulator. Real processes and sockets; the only waiting is for the sandboxes'
one-second processing delay and their callbacks."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

# A seeded CNY customer of the core simulator (120.00 available) that the README walkthrough,
# which shares this server, does not use.
WANG_FANG = "6222020000000002"


def _token(live_gateway: Any, container: Any) -> dict[str, str]:
    view, secret = container.partners.create(
        name="Embedded CN bank app", kind="bank_channel", scopes=None, actor="test"
    )
    token = httpx.post(
        f"{live_gateway.base_url}/oauth/token",
        auth=(view["id"], secret),
        data={"grant_type": "client_credentials"},
        timeout=10,
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("provider", "recipient", "clearing", "port_variable"),
    [
        (
            "wechatpay",
            {"type": "openid", "value": "oWxSandbox_WangWei_000000001"},
            "9100000000000202",
            "GATEWAY_WECHATPAY_SIMULATOR_PORT",
        ),
        (
            "alipay",
            {"type": "alipay_user_id", "value": "2088102000000001"},
            "9100000000000203",
            "GATEWAY_ALIPAY_SIMULATOR_PORT",
        ),
    ],
)
def test_serve_runs_the_sandbox_and_a_payout_completes_by_callback(
    live_gateway: Any,
    container: Any,
    provider: str,
    recipient: dict[str, str],
    clearing: str,
    port_variable: str,
) -> None:
    headers = _token(live_gateway, container)
    created = httpx.post(
        f"{live_gateway.base_url}/v1/payouts",
        headers={**headers, "Idempotency-Key": f"embedded-{provider}-1"},
        json={
            "source_account": WANG_FANG,
            "provider": provider,
            "recipient": recipient,
            "amount": {"value": "12.30", "currency": "CNY"},
            "description": "Tuition",
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    payout = created.json()
    assert payout["status"] == "processing"

    deadline = time.monotonic() + 20
    while payout["status"] == "processing" and time.monotonic() < deadline:
        time.sleep(0.2)
        payout = httpx.get(
            f"{live_gateway.base_url}/v1/payouts/{payout['id']}", headers=headers, timeout=10
        ).json()

    assert payout["status"] == "succeeded", payout
    core = live_gateway.env["GATEWAY_CORE_BANKING_SIMULATOR_PORT"]
    postings = httpx.get(
        f"http://127.0.0.1:{core}/simulator/postings",
        params={"reference": payout["id"]},
        timeout=10,
    ).json()
    assert postings["count"] == 1
    assert postings["data"][0]["credit_account"] == clearing
    sandbox = live_gateway.env[port_variable]
    callbacks = httpx.get(f"http://127.0.0.1:{sandbox}/sandbox/callbacks", timeout=10).json()
    expected = 204 if provider == "wechatpay" else 200  # Alipay gets `success`
    assert [c["statuses"] for c in callbacks["data"]] == [[expected]]
    assert f"{provider} sandbox" in live_gateway.logs()
