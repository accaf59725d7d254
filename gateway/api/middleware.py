"""The outermost ASGI middleware: correlation, body-size limit, access log and metrics.

It sits outside connexion's exception handling so it sees every final status, including the
problems rendered for errors. Correlation ids live in contextvars, which a2wsgi copies into the
handler threads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.problems import PROBLEM_JSON, problem_document
from gateway.domain.errors import PayloadTooLarge
from gateway.observability.context import (
    accept_request_id,
    accept_traceparent,
    request_id_var,
    request_state_var,
    trace_var,
)
from gateway.observability.logging import get_logger
from gateway.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS

access_log = get_logger("gateway.access")
_FIXED_OPERATIONS = {"/metrics": "metrics", "/openapi.json": "openapi", "/openapi.yaml": "openapi"}


def _operation(scope: Scope) -> str:
    routing = scope.get("extensions", {}).get("connexion_routing", {})
    operation = routing.get("operation_id")
    if operation:
        return str(operation).removeprefix("gateway.api.")
    path = scope.get("path", "")
    if path.startswith("/docs"):
        return "docs"
    return _FIXED_OPERATIONS.get(path, "unmatched")  # unknown paths share one label


class GatewayMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = 1_048_576,
        bulk_body_bytes: int = 1_048_576,
        bulk_paths: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.bulk_body_bytes = bulk_body_bytes
        self.bulk_paths = tuple(bulk_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # connexion's routing records the operation in scope["extensions"] of a *shallow copy*
        # of the scope; creating the dict here lets us read it back afterwards.
        scope.setdefault("extensions", {})
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = accept_request_id(headers.get("x-request-id"))
        trace = accept_traceparent(headers.get("traceparent"))
        rid_token = request_id_var.set(request_id)
        trace_token = trace_var.set(trace)
        state: dict[str, str] = {}
        state_token = request_state_var.set(state)
        status_holder = {"status": 500}
        limit = (
            self.bulk_body_bytes
            if scope["path"].startswith(self.bulk_paths)
            else self.max_body_bytes
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                extra = [
                    (b"x-request-id", request_id.encode()),
                    (b"traceparent", trace.traceparent.encode()),
                ]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        try:
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                await self._too_large(scope, send_with_headers, limit)
                return
            receive = self._counting(receive, limit)
            if (
                declared is None
                and scope["method"] in ("POST", "PUT", "PATCH")
                and limit == self.max_body_bytes
            ):
                try:
                    scope, receive = await self._buffer_chunked(scope, receive)
                except PayloadTooLarge:
                    await self._too_large(scope, send_with_headers, limit)
                    return
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            operation = _operation(scope)
            status = status_holder["status"]
            HTTP_REQUESTS.labels(operation, scope["method"], str(status)).inc()
            HTTP_LATENCY.labels(operation, scope["method"]).observe(elapsed)
            access_log.info(
                "http_request",
                method=scope["method"],
                path=scope["path"],
                operation=operation,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                partner_id=state.get("partner_id"),
            )
            request_id_var.reset(rid_token)
            trace_var.reset(trace_token)
            request_state_var.reset(state_token)

    @staticmethod
    async def _buffer_chunked(scope: Scope, receive: Receive) -> tuple[Scope, Receive]:
        """Read a chunked body (bounded by the limit) and declare its length.

        connexion treats a body without Content-Length as absent; ordinary bodies are small,
        so buffering them is cheap. Bulk endpoints stream and are not buffered.
        """
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"transfer-encoding"]
        headers.append((b"content-length", str(len(body)).encode()))
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return {**scope, "headers": headers}, replay

    @staticmethod
    def _counting(receive: Receive, limit: int) -> Receive:
        received = 0

        async def wrapped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"The request body exceeds {limit} bytes")
            return message

        return wrapped

    @staticmethod
    async def _too_large(scope: Scope, send: Any, limit: int) -> None:
        body = json.dumps(
            problem_document(
                413,
                "payload_too_large",
                "Payload too large",
                f"The request body exceeds {limit} bytes",
                instance=scope["path"],
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
