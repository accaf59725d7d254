"""`wallet-gateway worker` as production runs it: its own process, its alert gauges scraped from
its metrics port (GATEWAY_WORKER_METRICS_PORT), refusing a database that is not migrated."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from gateway.cli import main
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
WALLET_GATEWAY = str(Path(sys.executable).parent / "wallet-gateway")
ALERT_GAUGES = (
    "gateway_webhook_deliveries_pending",
    "gateway_transfers_unknown",
    "gateway_payouts_open",
    "gateway_reconciliation_breaks_open",
)
METRICS_TOKEN = "worker-metrics-token-for-tests"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A scratch SQLite database and data directory: the worker's jobs touch nothing shared."""
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")},
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'worker.db'}",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_LOG_FORMAT": "json",
        **extra,
    }


@pytest.fixture
def running_worker(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    env = _env(tmp_path, GATEWAY_WORKER_METRICS_PORT=str(port), GATEWAY_METRICS_TOKEN=METRICS_TOKEN)
    migrated = subprocess.run(
        [WALLET_GATEWAY, "migrate"], env=env, cwd=ROOT, capture_output=True, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr.decode()
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [WALLET_GATEWAY, "worker"], env=env, cwd=ROOT, stdout=output, stderr=output
        )
    try:
        yield f"http://127.0.0.1:{port}/metrics", process, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _scrape_until(url: str, process: subprocess.Popen[bytes], log: Path) -> str:
    """The exposition once every alert gauge is in it (the jobs' first round sets them)."""
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("the worker exited:\n" + log.read_text())
        try:
            response = httpx.get(url, headers=auth, timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        assert response.status_code == 200
        text = response.text
        if all(f"\n{name}{{" in text for name in ALERT_GAUGES):
            return text
        time.sleep(0.2)
    pytest.fail(f"alert gauges missing from the worker's metrics:\n{text}\n{log.read_text()}")


def test_worker_serves_its_alert_gauges_on_the_metrics_port(running_worker) -> None:  # type: ignore[no-untyped-def]
    url, process, log = running_worker
    text = _scrape_until(url, process, log)
    # An empty database: every gauge is present and zero, ready to alert on.
    assert 'gateway_transfers_unknown{kind="transfer"} 0.0' in text
    assert 'gateway_transfers_unknown{kind="refund"} 0.0' in text
    assert 'gateway_payouts_open{status="unknown"} 0.0' in text
    assert 'gateway_webhook_deliveries_pending{state="due"} 0.0' in text
    assert 'gateway_reconciliation_breaks_open{kind="missing_entry"} 0.0' in text
    assert "# TYPE gateway_reconciliation_breaks_open gauge" in text

    # The same bearer token as the gateway's /metrics; only /metrics is served.
    assert httpx.get(url, timeout=5).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    assert httpx.get(url.removesuffix("/metrics") + "/other", timeout=5).status_code == 404

    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    logs = log.read_text()
    assert "worker_metrics_listening" in logs
    assert METRICS_TOKEN not in logs


def test_worker_refuses_a_taken_metrics_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(tmp_path, GATEWAY_WORKER_METRICS_PORT=str(port))
        assert CliRunner().invoke(main, ["migrate"], env=env).exit_code == 0
        result = CliRunner().invoke(main, ["worker"], env=env)
    assert result.exit_code == 1
    assert f"cannot serve worker metrics on 127.0.0.1:{port}" in result.output
    assert "GATEWAY_WORKER_METRICS_PORT" in result.output


def test_worker_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = _env(tmp_path, GATEWAY_WORKER_METRICS_PORT="0")
    result = CliRunner().invoke(main, ["worker"], env=env)
    assert result.exit_code == 1
    assert "run `wallet-gateway migrate` first" in result.output
    migrated = CliRunner().invoke(main, ["migrate"], env=env)
    assert migrated.exit_code == 0 and "database at revision" in migrated.output
