"""`wallet-gateway serve` with GSMA Mobile Money enabled and no base URL runs the sandbox
itself (what `make run` gives): a payout goes out over HTTP, the sandbox calls the gateway back
on its own, and the hold is captured at the embedded core simulator. Real processes and
sockets; the only waiting is for the sandbox's processing delay and its callback."""

from __future__ import annotations

import time
from typing import Any

import httpx


def test_serve_runs_the_sandbox_and_a_payout_completes_by_callback(
    live_gateway: Any, container: Any
) -> None:
    _view, secret = container.partners.create(
        name="Embedded bank app", kind="bank_channel", scopes=None, actor="test"
    )
    token = httpx.post(
        f"{live_gateway.base_url}/oauth/token",
        auth=(_view["id"], secret),
        data={"grant_type": "client_credentials"},
        timeout=10,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    created = httpx.post(
        f"{live_gateway.base_url}/v1/payouts",
        headers={**headers, "Idempotency-Key": "embedded-sandbox-1"},
        json={
            "source_account": "0110000000000001",  # a seeded KES customer of the core simulator
            "provider": "gsma_mm",
            "recipient": {"type": "msisdn", "value": "+254712345601"},
            "amount": {"value": "120.00", "currency": "KES"},
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
    assert postings["data"][0]["credit_account"] == "9100000000000201"  # the gsma_mm clearing
    sandbox = live_gateway.env["GATEWAY_GSMA_MM_SIMULATOR_PORT"]
    callbacks = httpx.get(f"http://127.0.0.1:{sandbox}/sandbox/callbacks", timeout=10).json()
    assert [c["statuses"] for c in callbacks["data"]] == [[204]]
    assert "gsma_mm sandbox" in live_gateway.logs()
