"""A real gateway process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningGateway:
    base_url: str
    port: int
    env: dict[str, str]
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text()


@pytest.fixture(scope="session")
def live_gateway(settings, container, tmp_path_factory) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": settings.resolved_database_url,
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_PORT": str(port),
        "GATEWAY_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_ENVIRONMENT": "test",
        # The embedded core-banking simulator, on its own free port and a scratch ledger.
        "GATEWAY_CORE_BANKING_URL": "",
        "GATEWAY_CORE_BANKING_SIMULATOR_PORT": str(free_port()),
        "GATEWAY_CORE_BANKING_SIMULATOR_DB": ":memory:",
        # ...and the provider sandboxes, embedded on their own free ports too.
        "GATEWAY_GSMA_MM_SIMULATOR_PORT": str(free_port()),
        "GATEWAY_WECHATPAY_SIMULATOR_PORT": str(free_port()),
        "GATEWAY_ALIPAY_SIMULATOR_PORT": str(free_port()),
        # The process shares the session's database: background workers in it (e.g. the
        # webhook dispatcher) would race the tests' own, deterministic ones.
        "GATEWAY_RUN_WORKERS_IN_PROCESS": "false",
    }
    log_path = tmp_path_factory.mktemp("live") / "gateway.log"
    bin_dir = Path(sys.executable).parent
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(bin_dir / "wallet-gateway"), "serve"], env=env, cwd=ROOT, stdout=log, stderr=log
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health/live", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("gateway did not start:\n" + log_path.read_text())
    yield RunningGateway(base_url, port, env, log_path)
    process.terminate()
    process.wait(timeout=15)
