"""Per-request correlation (request id, W3C trace context) carried in contextvars.

Set by the ASGI middleware, copied into handler threads by a2wsgi, read by logs, audit entries
and outgoing calls (adapters add `traceparent` to what they send).
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@dataclass(frozen=True)
class TraceContext:
    trace_id: str
    span_id: str
    flags: str = "01"

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceContext:
        """A new span in the same trace, for an outgoing call."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.flags)


request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# A mutable per-request dict: handler threads run in a *copy* of the context, so they report
# back (e.g. the authenticated partner id for the access log) by mutating this shared object.
request_state_var: ContextVar[dict[str, str] | None] = ContextVar("request_state", default=None)
trace_var: ContextVar[TraceContext | None] = ContextVar("trace", default=None)


def accept_request_id(header: str | None) -> str:
    """Keep a caller's X-Request-Id if it is sane, otherwise mint one."""
    if header and _REQUEST_ID.match(header):
        return header
    return "req_" + secrets.token_hex(12)


def accept_traceparent(header: str | None) -> TraceContext:
    """Continue the caller's trace (new span of ours), or start a new one if absent/invalid."""
    match = _TRACEPARENT.match(header.strip().lower()) if header else None
    if match and match.group(1) != "0" * 32 and match.group(2) != "0" * 16:
        return TraceContext(match.group(1), secrets.token_hex(8), match.group(3))
    return TraceContext(secrets.token_hex(16), secrets.token_hex(8), "01")


def outgoing_headers() -> dict[str, str]:
    """Headers that carry correlation to a downstream call."""
    headers = {}
    trace = trace_var.get()
    if trace is not None:
        headers["traceparent"] = trace.child().traceparent
    request_id = request_id_var.get()
    if request_id:
        headers["X-Request-Id"] = request_id
    return headers
