"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from gateway.api.deps import container
from gateway.domain.errors import ServiceUnavailable
from gateway.observability.metrics import READY
from gateway.store import migrate


def live() -> dict[str, Any]:
    return {"status": "ok"}


def _database_checks() -> dict[str, str]:
    gateway = container()
    try:
        current = migrate.status(gateway.db.engine)
    except Exception:  # noqa: BLE001 - any failure means "not reachable" to a probe
        return {"database": "unreachable", "migrations": "unknown"}
    migrations = "ok" if current.up_to_date else f"at {current.current}, expected {current.head}"
    return {"database": "ok", "migrations": migrations}


def ready() -> dict[str, Any]:
    checks = _database_checks()
    for name, check in container().health_checks.items():
        try:
            checks[name] = check() or "ok"
        except Exception as exc:  # noqa: BLE001 - a probe reports, it does not crash
            checks[name] = f"failed: {type(exc).__name__}"
    for name, result in checks.items():
        READY.labels(name).set(1 if result == "ok" else 0)
    if any(result != "ok" for result in checks.values()):
        failing = ", ".join(name for name, result in checks.items() if result != "ok")
        raise ServiceUnavailable(f"Not ready: {failing}", code="not_ready", checks=checks)
    return {"status": "ok", "checks": checks}
