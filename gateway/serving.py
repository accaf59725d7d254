"""Production serving: gunicorn managing uvicorn worker processes (`serve --gunicorn`).

gunicorn restarts crashed or hung processes and drains them on SIGTERM; each process builds
its own app and container (`gateway.app:create_app()`), so nothing (pools, threads) is shared
across a fork. Settings decide the bind address, process count and timeouts; an operator can
still pass any gunicorn option through `GUNICORN_CMD_ARGS`, which wins.

Prometheus needs every process's samples in one exposition: `prepare_metrics_dir()` must run
before `prometheus_client` is first imported (it reads `PROMETHEUS_MULTIPROC_DIR` at import
time), and the master removes a dead process's live gauges in `child_exit`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from gateway.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_dir() -> Path:
    """Use (and empty) `PROMETHEUS_MULTIPROC_DIR`, or create a private one and export it.

    Stale files from a previous run would be added to the new counters, so the directory is
    emptied at start-up, as the prometheus_client documentation requires.
    """
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="wallet-gateway-metrics-"))
        os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def _child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def gunicorn_options(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """The gunicorn configuration derived from settings (CLI overrides win)."""
    return {
        "bind": [f"{host or settings.host}:{port or settings.port}"],
        "workers": workers or settings.workers,
        "worker_class": "uvicorn_worker.UvicornWorker",
        # Our middleware writes one JSON access line per request; gunicorn's would duplicate it.
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "graceful_timeout": settings.graceful_shutdown_seconds,
        "timeout": settings.gunicorn_timeout_seconds,
        "keepalive": settings.gunicorn_keepalive_seconds,
        "proc_name": "wallet-gateway",
        "child_exit": _child_exit,
    }


class GatewayServer:
    """A gunicorn application serving `gateway.app:create_app()` in every worker process."""

    def __init__(self, options: dict[str, Any]) -> None:
        from gunicorn.app.base import BaseApplication

        outer = self

        class _Application(BaseApplication):
            def load_config(self) -> None:
                for key, value in outer.options.items():
                    self.cfg.set(key, value)
                if "control_socket_disable" in self.cfg.settings:
                    # gunicorn >= 24 opens a runtime-management socket under $HOME by
                    # default; the gateway needs none and a read-only container has no $HOME.
                    self.cfg.set("control_socket_disable", True)
                # Like the gunicorn command itself: GUNICORN_CMD_ARGS overrides the rest.
                parsed = self.cfg.parser().parse_args(self.cfg.get_cmd_args_from_env())
                for key, value in vars(parsed).items():
                    if value is not None and key != "args":
                        self.cfg.set(key.lower(), value)

            def load(self) -> Any:
                from gateway.app import create_app

                return create_app()

        self.options = options
        self.application = _Application()

    @property
    def config(self) -> Any:
        """The effective gunicorn `Config` (settings plus GUNICORN_CMD_ARGS)."""
        return self.application.cfg

    def run(self) -> None:
        self.application.run()
