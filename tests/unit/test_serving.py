"""gunicorn configuration for `serve --gunicorn`, and the shared metrics directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.serving import GatewayServer, gunicorn_options, prepare_metrics_dir
from gateway.settings import Settings


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_gunicorn_runs_uvicorn_workers_configured_by_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    settings = _settings(
        host="192.0.2.10",
        port=9001,
        workers=3,
        graceful_shutdown_seconds=25,
        gunicorn_timeout_seconds=45,
        gunicorn_keepalive_seconds=90,
        log_level="WARNING",
    )
    config = GatewayServer(gunicorn_options(settings)).config
    assert config.bind == ["192.0.2.10:9001"]
    assert config.workers == 3
    assert config.worker_class_str == "uvicorn_worker.UvicornWorker"
    assert (config.graceful_timeout, config.timeout, config.keepalive) == (25, 45, 90)
    assert config.accesslog is None  # the gateway writes its own JSON access lines
    assert config.loglevel == "warning"
    assert config.settings["control_socket_disable"].get() is True


def test_command_line_options_override_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    options = gunicorn_options(_settings(workers=3), host="127.0.0.1", port=9100, workers=5)
    config = GatewayServer(options).config
    assert (config.bind, config.workers) == (["127.0.0.1:9100"], 5)


def test_gunicorn_cmd_args_win_over_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--workers 7 --max-requests 1000")
    config = GatewayServer(gunicorn_options(_settings(workers=2))).config
    assert config.workers == 7
    assert config.max_requests == 1000


def test_a_configured_metrics_dir_is_emptied_of_stale_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_4242.db").write_bytes(b"left by a previous run")
    (directory / "README").write_text("not a sample file")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    assert prepare_metrics_dir() == directory
    assert sorted(path.name for path in directory.iterdir()) == ["README"]


def test_without_a_metrics_dir_a_private_one_is_created_and_exported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "placeholder")  # restored after the test
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    directory = prepare_metrics_dir()
    try:
        assert directory.is_dir()
        assert list(directory.iterdir()) == []
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(directory)
    finally:
        directory.rmdir()


def test_serve_gunicorn_explains_a_missing_production_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gunicorn", None)  # makes `import gunicorn` fail
    result = CliRunner().invoke(main, ["serve", "--gunicorn"], env={"GATEWAY_ENVIRONMENT": "test"})
    assert result.exit_code == 1
    assert "pip install 'wallet-gateway[production]'" in result.output
