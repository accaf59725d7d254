"""docker/compose.yaml, read as data: services start after what they call, and the workers'
metrics port is configured and reachable on the internal network (docs/operations.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def _called(environment: dict[str, str], variables: list[str]) -> set[str]:
    """The compose services named as hosts in these URL settings."""
    return {urlparse(str(environment[name])).hostname or "" for name in variables}


def test_the_gateway_starts_after_every_system_it_calls(services: dict[str, Any]) -> None:
    gateway = services["gateway"]
    environment = gateway["environment"]
    urls = [
        name
        for name, value in environment.items()
        if name.endswith("_URL") and "://" in str(value) and name != "GATEWAY_PUBLIC_BASE_URL"
    ]
    called = _called(environment, urls) - {"gateway"}  # its own callback address
    assert {"core-banking", "gsma-mm", "wechatpay", "alipay", "sms-gateway", "redis"} <= called
    assert called <= set(services)
    assert called <= set(gateway["depends_on"]), sorted(called - set(gateway["depends_on"]))
    for name in called:
        assert gateway["depends_on"][name]["condition"] == "service_healthy"


def test_the_worker_starts_after_the_core_and_every_enabled_provider(
    services: dict[str, Any],
) -> None:
    worker = services["worker"]
    environment = worker["environment"]
    providers = str(environment["GATEWAY_PROVIDERS"]).split(",")
    variables = ["GATEWAY_CORE_BANKING_URL"] + [
        f"GATEWAY_{provider.upper()}_BASE_URL" for provider in providers
    ]
    called = _called(environment, variables)
    assert called == {"core-banking", "gsma-mm", "wechatpay", "alipay"}
    assert called <= set(worker["depends_on"]), sorted(called - set(worker["depends_on"]))


def test_the_worker_serves_its_metrics_on_the_internal_network(services: dict[str, Any]) -> None:
    worker = services["worker"]
    port = str(worker["environment"]["GATEWAY_WORKER_METRICS_PORT"])
    assert port.isdigit() and port != "0"
    assert port in [str(exposed) for exposed in worker["expose"]]
    assert "backend" in worker["networks"]
    assert "ports" not in worker  # never published on the host
    assert "metrics_token" in {secret["source"] for secret in worker["secrets"]}
