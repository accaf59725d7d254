"""A loopback HTTP receiver for webhook tests: records every request, answers as told."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]


# Decides the answer to a request: a status, or (status, headers, body).
Responder = Callable[[Received], int | tuple[int, dict[str, str], bytes]]


class WebhookSink:
    """`with WebhookSink() as sink: ... sink.url ... sink.received`."""

    def __init__(self, respond: Responder | None = None) -> None:
        self.respond: Responder = respond or (lambda _request: 204)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = Received(
                    self.path,
                    {name.lower(): value for name, value in self.headers.items()},
                    self.rfile.read(length),
                )
                with sink._lock:
                    sink.received.append(request)
                answer = sink.respond(request)
                status, headers, body = (answer, {}, b"") if isinstance(answer, int) else answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A client that gave up (timeout tests) is expected, not an error worth printing.
        self.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def by_event(self, event_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.event_id == event_id]

    def __enter__(self) -> WebhookSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


# --- the rest of a webhook test's world ---------------------------------------------------------

PREFIX = {"link": "lnk", "transfer": "tr", "refund": "rf", "payout": "po", "settlement": "stl"}


def permissive_policy() -> Any:
    """Tests deliver to a loopback http sink, which production settings forbid."""
    from gateway.security.ssrf import TargetPolicy

    return TargetPolicy(allow_http=True, allow_private=True)


class WebhookWorld:
    """Partners, endpoints, events and dispatchers for one test; `close()` tidies up.

    Dispatchers claim every due delivery in the database, so each test deletes its endpoints
    at the end (which cancels what is still queued) to leave nothing for the next test.
    """

    def __init__(self, container: Any) -> None:
        self.container = container
        self.endpoints: list[tuple[str, str]] = []

    def partner(self, kind: str = "wallet") -> str:
        import secrets

        view, _secret = self.container.partners.create(
            name=f"webhook test {secrets.token_hex(3)}", kind=kind, actor="test"
        )
        return str(view["id"])

    def endpoints_service(self, clock: Any = None, overlap_hours: float = 24.0) -> Any:
        from datetime import timedelta

        from gateway.services.webhook_endpoints import WebhookEndpointService

        return WebhookEndpointService(
            self.container.db,
            clock or self.container.clock,
            self.container.vault,
            policy=permissive_policy(),
            secret_overlap=timedelta(hours=overlap_hours),
        )

    def endpoint(
        self,
        partner_id: str,
        url: str,
        event_types: list[str] | None = None,
        *,
        clock: Any = None,
        enabled: bool = True,
    ) -> tuple[str, str]:
        """Create an endpoint; returns (endpoint id, secret)."""
        view, secret = self.endpoints_service(clock).create(
            partner_id, url=url, event_types=event_types or ["*"], enabled=enabled
        )
        self.endpoints.append((partner_id, view["id"]))
        return str(view["id"]), secret

    def emit(
        self,
        partner_id: str,
        type: str = "transfer.succeeded",
        *,
        at: Any = None,
        resource_id: str | None = None,
        sequence: int = 1,
    ) -> str:
        from gateway.domain.ids import new_id
        from gateway.store.events import record_event
        from tests.event_schemas import sample_data

        resource = type.split(".")[0]
        resource_id = resource_id or new_id(PREFIX[resource])
        with self.container.db.transaction() as session:
            event = record_event(
                session,
                type=type,
                resource_type=resource,
                resource_id=resource_id,
                sequence=sequence,
                data=sample_data(resource, resource_id, type.split(".")[1]),
                partner_id=partner_id,
                at=at or self.container.clock.now(),
            )
            return str(event.id)

    def dispatcher(
        self, clock: Any = None, *, rng: Any = None, db: Any = None, **settings: Any
    ) -> Any:
        from gateway.workers.webhooks import build_dispatcher

        values = {"webhook_dispatch_concurrency": 1, **settings}
        return build_dispatcher(
            self.container.settings.model_copy(update=values),
            db or self.container.db,
            self.container.vault,
            clock or self.container.clock,
            policy=permissive_policy(),
            rng=rng,
        )

    def delivery(self, event_id: str, endpoint_id: str) -> Any:
        from sqlalchemy import select

        from gateway.store.tables import WebhookDelivery

        with self.container.db.read() as session:
            return session.scalars(
                select(WebhookDelivery).where(
                    WebhookDelivery.event_id == event_id,
                    WebhookDelivery.endpoint_id == endpoint_id,
                )
            ).one_or_none()

    def attempts(self, event_id: str) -> list[Any]:
        from sqlalchemy import select

        from gateway.store.tables import WebhookAttempt

        with self.container.db.read() as session:
            return list(
                session.scalars(
                    select(WebhookAttempt)
                    .where(WebhookAttempt.event_id == event_id)
                    .order_by(WebhookAttempt.number)
                )
            )

    def close(self) -> None:
        from gateway.domain.errors import NotFound

        service = self.endpoints_service()
        for partner_id, endpoint_id in self.endpoints:
            with contextlib.suppress(NotFound):  # the test may have deleted it already
                service.delete(partner_id, endpoint_id)
