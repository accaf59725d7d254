"""What operators rely on (docs/operations.md): readiness failing for each reason, stored secrets,
the database's connection settings, rate-limit headers, the API docs and the README's links."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlalchemy import text

from gateway.cli import main
from gateway.store import migrate
from gateway.store.db import Database, build_engine
from tests.conftest import make_settings
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def _database_swapped(container: Any, url: str, data_dir: Path) -> Iterator[Database]:
    """The app's container reads another database for the duration (restored afterwards)."""
    db = Database(build_engine(make_settings(url, data_dir)))
    real = container.db
    container.db = db
    try:
        yield db
    finally:
        container.db = real
        db.engine.dispose()


# --- readiness -----------------------------------------------------------------------------------


def test_readiness_fails_when_the_database_is_unreachable(client, container, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nowhere = f"postgresql+psycopg://gateway@127.0.0.1:{free_port()}/gateway"  # nothing listens
    with _database_swapped(container, nowhere, tmp_path):
        response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["checks"]["database"] == "unreachable"
    assert body["checks"]["migrations"] == "unknown"
    assert body["checks"]["core_banking"] == "ok"  # only the failing check is blamed
    assert client.get("/health/ready").status_code == 200  # the real database again


def test_readiness_fails_while_migrations_are_behind(client, container, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with _database_swapped(container, url, tmp_path) as old:
        migrate.upgrade(old.engine, "0001")
        response = client.get("/health/ready")
        metrics = client.get("/metrics").text
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["migrations"] == f"at 0001, expected {migrate.head_revision()}"
    assert 'gateway_ready{check="migrations"} 0.0' in metrics
    assert client.get("/health/ready").json()["checks"]["migrations"] == "ok"


def test_readiness_gives_up_on_a_silent_core_within_the_health_timeout(  # type: ignore[no-untyped-def]
    client, container, core_simulator, settings
) -> None:
    fault_seconds = 30.0
    assert settings.core_banking_health_timeout_seconds < fault_seconds / 3
    core_simulator.inject("Ping", "timeout", seconds=fault_seconds)
    started = time.monotonic()
    response = client.get("/health/ready")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["checks"]["core_banking"] == "unreachable"
    assert response.json()["checks"]["database"] == "ok"
    # Bounded by GATEWAY_CORE_BANKING_HEALTH_TIMEOUT_SECONDS (2 s here), neither by the core's
    # stall (30 s) nor by the adapter's ordinary operation timeout (10 s in tests/conftest.py).
    assert elapsed < 8.0


# --- partners' secrets ---------------------------------------------------------------------------


def test_client_secrets_are_stored_as_argon2id_hashes(settings, container) -> None:  # type: ignore[no-untyped-def]
    env = {
        "GATEWAY_DATABASE_URL": settings.resolved_database_url,
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_ENVIRONMENT": "test",
    }
    result = CliRunner().invoke(
        main,
        ["partners", "create", "--name", "Hashed", "--kind", "wallet", "--format", "json"],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    secret = created["client_secret"]
    assert len(secret) >= 32

    with container.db.engine.connect() as connection:  # the table as stored, every column
        row = dict(
            connection.execute(
                text("SELECT * FROM partners WHERE id = :id"), {"id": created["client_id"]}
            )
            .mappings()
            .one()
        )
    assert row["client_secret_hash"].startswith("$argon2id$")
    assert secret not in json.dumps(row, default=str)
    assert PasswordHasher().verify(row["client_secret_hash"], secret)  # a hash of that secret


# --- the database's connection settings ----------------------------------------------------------


def test_connections_get_the_configured_database_settings(container, settings) -> None:  # type: ignore[no-untyped-def]
    with container.db.engine.connect() as connection:
        if container.db.dialect == "sqlite":
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30000
        else:
            timeout = connection.execute(text("SHOW statement_timeout")).scalar()
            assert timeout == f"{settings.database_statement_timeout_ms // 1000}s"


# --- rate limits ---------------------------------------------------------------------------------


def test_rate_limit_headers_on_every_answer_and_on_the_429(client, make_partner) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner(rate_limit="2/minute")
    responses = [client.get("/v1/partners/me", headers=partner.auth) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    for response in responses:
        assert response.headers["ratelimit-limit"] == "2"
        assert 1 <= int(response.headers["ratelimit-reset"]) <= 60
    assert [r.headers["ratelimit-remaining"] for r in responses] == ["1", "0", "0"]
    refused = responses[2]
    assert refused.json()["code"] == "rate_limited"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["retry-after"] == refused.headers["ratelimit-reset"]


# --- API documents -------------------------------------------------------------------------------


def test_swagger_ui_and_the_openapi_document_are_served(client) -> None:  # type: ignore[no-untyped-def]
    document = client.get("/openapi.json")
    assert document.status_code == 200
    spec = document.json()
    assert spec["openapi"].startswith("3.")
    assert "/oauth/token" in spec["paths"]

    ui = client.get("/docs/")
    assert ui.status_code == 200
    assert "swagger-ui" in ui.text.lower()
    assert client.get("/docs", follow_redirects=True).status_code == 200


# --- the README ----------------------------------------------------------------------------------


def test_readme_links_to_the_operations_guide() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "](docs/operations.md)" in readme
    assert (ROOT / "docs" / "operations.md").is_file()


def test_operations_guide_metrics_table_is_one_table() -> None:
    """A blank line inside a Markdown table ends it: every metric row must follow a row."""
    lines = (ROOT / "docs" / "operations.md").read_text().splitlines()
    rows = [i for i, line in enumerate(lines) if line.startswith("| `gateway_")]
    assert rows
    for index in rows:
        assert lines[index - 1].startswith("|"), f"row cut off the table: {lines[index]}"
    documented = {lines[i].split("`")[1].split("{")[0] for i in rows}
    assert {
        "gateway_transfers_unknown",
        "gateway_payouts_open",
        "gateway_reconciliation_breaks_open",
    } <= documented


# --- the standalone core-banking simulator -------------------------------------------------------


def test_standalone_core_banking_simulator_answers_ping(tmp_path: Path) -> None:
    from adapters.core_banking.simulator.app import SOAP_PATH
    from adapters.core_banking.soap import SoapCoreBanking

    port = free_port()
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")},
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_DATA_DIR": str(tmp_path),
    }
    log = tmp_path / "simulator.log"
    command = [str(Path(sys.executable).parent / "wallet-gateway"), "simulator", "core-banking"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port), "--db", ":memory:"],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=output,
        )
    soap_url = f"http://127.0.0.1:{port}{SOAP_PATH}"
    try:
        deadline = time.monotonic() + 60
        wsdl = None
        while wsdl is None and time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail("the simulator exited:\n" + log.read_text())
            try:
                wsdl = httpx.get(f"{soap_url}?wsdl", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
        assert wsdl is not None, log.read_text()
        assert wsdl.status_code == 200
        assert "definitions" in wsdl.text and "Ping" in wsdl.text

        core = SoapCoreBanking(soap_url, source_system="GATEWAY-TESTS")
        try:
            core.ping(timeout=5)  # raises unless the core answered
        finally:
            core.close()
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl-C does: a clean stop
        try:
            returncode = process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert returncode == 0, log.read_text()
    assert f"core-banking simulator on {soap_url}" in log.read_text()
