"""`wallet-gateway serve` with no core configured runs the core-banking simulator itself."""

from __future__ import annotations

import httpx


def test_serve_starts_the_embedded_core_and_readiness_sees_it(live_gateway) -> None:  # type: ignore[no-untyped-def]
    ready = httpx.get(f"{live_gateway.base_url}/health/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["core_banking"] == "ok"
    port = live_gateway.env["GATEWAY_CORE_BANKING_SIMULATOR_PORT"]
    simulator = httpx.get(f"http://127.0.0.1:{port}/simulator/accounts?kind=fee", timeout=10)
    assert {row["currency"] for row in simulator.json()["data"]} == {"CNY", "USD", "KES"}
    assert "core banking" in live_gateway.logs()
