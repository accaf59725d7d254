"""Plumbing the provider sandboxes (WeChat Pay, Alipay) share: serving a Flask app on a
threaded loopback server with a callback dispatcher, injectable faults, and an outbox of
callbacks with retries. Nothing here knows a provider's API: each sandbox reads its API on
its own, independently of the gateway's adapter (tests/unit/test_layering.py).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar, cast

import requests
from flask import Flask, Response
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

log = logging.getLogger("provider_sandbox")

# Sends one callback: (url, headers, body) -> HTTP status.
Sender = Callable[[str, dict[str, str], bytes], int]


def http_sender(timeout: float = 5.0) -> Sender:
    """Deliver callbacks over HTTP (POST)."""
    session = requests.Session()
    session.trust_env = False

    def send(url: str, headers: dict[str, str], body: bytes) -> int:
        return session.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        ).status_code

    return send


@dataclass
class CallbackRecord:
    """One callback the sandbox owes or sent (the delivery log of the admin API)."""

    reference: str
    url: str
    body: bytes
    headers: dict[str, str]
    due_at: datetime
    forged: bool = False
    attempts: int = 0
    delivered: bool = False
    statuses: list[int | str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "url": self.url,
            "forged": self.forged,
            "due_at": self.due_at.isoformat(),
            "attempts": self.attempts,
            "delivered": self.delivered,
            "statuses": list(self.statuses),
        }


class Outbox:
    """Callbacks with their delivery attempts; `accepted(status, body)` says whether the
    receiver took one (providers differ: a 2xx, or a body that reads `success`)."""

    def __init__(
        self,
        accepted: Callable[[int, bytes], bool],
        *,
        attempts: int = 3,
        retry: timedelta = timedelta(seconds=2),
    ) -> None:
        self.accepted = accepted
        self.attempts = attempts
        self.retry = retry
        self._lock = threading.Lock()
        self._deliver_lock = threading.Lock()
        self.records: list[CallbackRecord] = []

    def add(self, *records: CallbackRecord) -> None:
        with self._lock:
            self.records.extend(records)

    def clear(self) -> None:
        with self._lock:
            self.records.clear()

    def pending(self) -> list[CallbackRecord]:
        with self._lock:
            return [record for record in self.records if not record.delivered]

    def all(self) -> list[CallbackRecord]:
        with self._lock:
            return list(self.records)

    def deliver(
        self, now: datetime, send: Callable[[CallbackRecord], tuple[int, bytes]]
    ) -> list[CallbackRecord]:
        """Send every callback whose time has come (`send(record)` -> status, body); returns
        those attempted."""
        delivered = []
        with self._deliver_lock:
            with self._lock:
                due = [
                    record
                    for record in self.records
                    if not record.delivered
                    and record.attempts < self.attempts
                    and record.due_at <= now
                ]
            for record in due:
                record.attempts += 1
                try:
                    status, body = send(record)
                except requests.RequestException as exc:
                    record.statuses.append(type(exc).__name__)
                    record.due_at = now + self.retry * record.attempts
                    delivered.append(record)
                    continue
                record.statuses.append(status)
                record.answers.append(body[:200].decode("utf-8", errors="replace"))
                if self.accepted(status, body) or record.forged:
                    record.delivered = True  # a forged one is sent once, whatever the answer
                else:
                    record.due_at = now + self.retry * record.attempts
                delivered.append(record)
        return delivered


def new_rule_id() -> str:
    return "flt_" + secrets.token_hex(4)


Rule = TypeVar("Rule")


class FaultList(Generic[Rule]):
    """Injected faults, first match wins; a rule with `times` is used up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Any] = []

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [rule for rule in self._rules if rule.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def take(self, operation: str, matches: Callable[[Rule], bool] | None = None) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.operation not in (operation, "*"):
                    continue
                if matches is not None and not matches(rule):
                    continue
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                return rule
        return None


class SandboxControls(Generic[Rule]):
    """The test API every sandbox offers: inject faults, count requests. The sandbox sets
    `faults`, `requests`, `_lock` and `_wake` in its constructor and names its rule type."""

    rule_type: Callable[..., Rule]
    faults: FaultList[Rule]
    requests: dict[str, int]
    _lock: threading.Lock
    _wake: threading.Event

    def inject(self, operation: str, mode: str, **options: Any) -> Rule:
        """Add a fault, e.g. `inject("transfer", "timeout", seconds=2)` (see MODES)."""
        return self.faults.add(self.rule_type(operation=operation, mode=mode, **options))

    @contextlib.contextmanager
    def fault(self, operation: str, mode: str, **options: Any) -> Iterator[Rule]:
        rule = self.inject(operation, mode, **options)
        try:
            yield rule
        finally:
            self.faults.remove(rule.id)  # type: ignore[attr-defined]

    def reset_faults(self) -> None:
        """Remove every fault and wake requests stalled by `timeout`."""
        self.faults.clear()
        self._wake.set()
        self._wake = threading.Event()

    def request_count(self, operation: str) -> int:
        with self._lock:
            return self.requests.get(operation, 0)

    server_name: str  # the threads' name, e.g. "gsma-mm-sandbox"

    def serve(
        self, host: str = "127.0.0.1", port: int = 0, *, deliver_callbacks: bool = True
    ) -> SandboxServer:
        """Serve on a threaded server in daemon threads (port 0: a free one); with
        `deliver_callbacks`, a dispatcher thread sends callbacks as they fall due."""
        served = cast(Served, self)  # each sandbox has its `app` and `deliver_callbacks`
        server = SandboxServer(
            served, host, port, name=self.server_name, deliver_callbacks=deliver_callbacks
        )
        server.start()
        return server


def abort_connection(environ: dict[str, Any]) -> Response:
    """Close the caller's connection without an answer (the response is lost in transit)."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    return Response(b"", status=500)


class Served(Protocol):
    app: Flask

    def deliver_callbacks(self) -> Sequence[object]: ...

    def reset_faults(self) -> None: ...


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class SandboxServer:
    """A sandbox on a threaded HTTP server, plus (optionally) its callback dispatcher."""

    def __init__(
        self,
        sandbox: Served,
        host: str,
        port: int,
        *,
        name: str,
        deliver_callbacks: bool = True,
    ) -> None:
        self.sandbox = sandbox
        # Bind ourselves: werkzeug exits the process when a port is taken; we raise OSError.
        listener = socket.create_server((host, port), backlog=128)
        try:
            self._server: BaseWSGIServer = make_server(
                host,
                port,
                sandbox.app,
                threaded=True,
                request_handler=_QuietHandler,
                fd=listener.fileno(),
            )
        finally:
            listener.close()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name=name, daemon=True)
        ]
        if deliver_callbacks:
            self._threads.append(
                threading.Thread(target=self._dispatch, name=f"{name}-callbacks", daemon=True)
            )

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.port)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _dispatch(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.sandbox.deliver_callbacks()
            except Exception:
                log.exception("sandbox_callback_dispatch_failed")

    def wait(self) -> None:
        while self._threads[0].is_alive():
            self._threads[0].join(0.5)

    def shutdown(self) -> None:
        self._stop.set()
        self.sandbox.reset_faults()  # wakes stalled requests
        if self._threads[0].is_alive():
            self._server.shutdown()
        for thread in self._threads:
            thread.join(timeout=5)
        self._server.server_close()


def json_body() -> dict[str, Any]:
    """The request's JSON object (admin API), or ValueError for anything else."""
    from flask import request

    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def add_fault_routes(
    app: Any, sandbox: Any, rule_from_json: Callable[[dict[str, Any]], Any]
) -> None:
    """The admin API for a sandbox's fault rules: list, add, clear, delete one."""
    from flask import jsonify

    @app.get("/sandbox/faults")
    def list_faults() -> Response:
        return jsonify({"data": [rule.to_json() for rule in sandbox.faults.rules()]})

    @app.post("/sandbox/faults")
    def add_fault() -> tuple[Response, int]:
        rule = sandbox.faults.add(rule_from_json(json_body()))
        return jsonify(rule.to_json()), 201

    @app.delete("/sandbox/faults")
    def clear_faults() -> tuple[str, int]:
        sandbox.reset_faults()
        return "", 204

    @app.delete("/sandbox/faults/<rule_id>")
    def delete_fault(rule_id: str) -> tuple[Response | str, int]:
        if not sandbox.faults.remove(rule_id):
            return jsonify({"error": "no such fault rule"}), 404
        return "", 204
