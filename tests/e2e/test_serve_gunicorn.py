"""`wallet-gateway serve --gunicorn`: several processes, one metrics view, a clean SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT
from tests.net import free_port


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("gunicorn exited:\n" + log.read_text())
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail("gunicorn did not become ready:\n" + log.read_text())


def _counter(metrics: str, operation: str) -> float:
    pattern = (
        rf'gateway_http_requests_total\{{[^}}]*operation="{re.escape(operation)}"[^}}]*\}} (\S+)'
    )
    return sum(float(value) for value in re.findall(pattern, metrics))


def test_gunicorn_processes_share_one_metrics_view_and_stop_cleanly(
    settings,
    container,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # Left by a previous run: it must be wiped, or /metrics would add (or choke on) it.
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")
    env = {
        **{key: value for key, value in os.environ.items() if key != "GUNICORN_CMD_ARGS"},
        "GATEWAY_DATABASE_URL": settings.resolved_database_url,
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_PORT": str(port),
        "GATEWAY_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_WORKERS": "2",
        "GATEWAY_RUN_WORKERS_IN_PROCESS": "false",
        "GATEWAY_GRACEFUL_SHUTDOWN_SECONDS": "5",
        # Its own embedded core-banking simulator: never the default port another run may hold.
        "GATEWAY_CORE_BANKING_URL": "",
        "GATEWAY_CORE_BANKING_SIMULATOR_PORT": str(free_port()),
        "GATEWAY_CORE_BANKING_SIMULATOR_DB": ":memory:",
        # ...and so do the provider sandboxes it starts.
        "GATEWAY_GSMA_MM_SIMULATOR_PORT": str(free_port()),
        "GATEWAY_WECHATPAY_SIMULATOR_PORT": str(free_port()),
        "GATEWAY_ALIPAY_SIMULATOR_PORT": str(free_port()),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    log = tmp_path / "gunicorn.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "wallet-gateway"), "serve", "--gunicorn"],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=output,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, process, log)
        for _ in range(20):  # a new connection each time, so both processes take some
            assert httpx.get(f"{base_url}/health/live", timeout=5).status_code == 200
        metrics = httpx.get(f"{base_url}/metrics", timeout=5).text
        assert _counter(metrics, "health.live") == 20
        assert "gateway_http_request_duration_seconds_bucket" in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    output_text = log.read_text()
    assert returncode == 0, output_text
    assert output_text.count("Booting worker with pid") == 2
    assert "uvicorn_worker.UvicornWorker" in output_text
    assert "Shutting down: Master" in output_text
