"""Prometheus metrics. Defined once per process; multiprocess-aware for gunicorn.

With several worker processes set `PROMETHEUS_MULTIPROC_DIR` (see docs/operations.md) and the
exposition aggregates every process's files. Gateway processes serve them on `GET /metrics`;
`wallet-gateway worker` serves no API, so it exposes them with `MetricsServer` on its own port
(GATEWAY_WORKER_METRICS_PORT): the alert gauges its jobs refresh exist only there.
"""

from __future__ import annotations

import hmac
import os
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter(
    "gateway_http_requests_total",
    "HTTP requests by OpenAPI operation, method and status code",
    ["operation", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "gateway_http_request_duration_seconds",
    "HTTP request latency by OpenAPI operation",
    ["operation", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RATE_LIMITED = Counter(
    "gateway_rate_limited_total", "Requests refused by rate limits", ["partner_id"]
)
AUTH_FAILURES = Counter(
    "gateway_auth_failures_total", "Rejected credentials and tokens by reason", ["reason"]
)
READY = Gauge("gateway_ready", "1 when the readiness checks pass", ["check"])

# --- core banking (adapters/core_banking/soap.py) ---
CORE_BANKING_CALLS = Counter(
    "gateway_core_banking_calls_total",
    "SOAP calls to the core by operation and outcome "
    "(ok, rejected, unavailable, unknown, error); retried reads count each attempt",
    ["operation", "outcome"],
)
CORE_BANKING_LATENCY = Histogram(
    "gateway_core_banking_call_duration_seconds",
    "Duration of one SOAP call to the core (one attempt)",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def render() -> tuple[bytes, str]:
    """The exposition text (all processes' samples when running multiprocess)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def token_matches(presented_header: str, token: str | None) -> bool:
    """Whether an `Authorization` header carries the metrics token (always, without a token)."""
    if token is None:
        return True
    presented = presented_header.removeprefix("Bearer ")
    return hmac.compare_digest(presented.encode(), token.encode())


class _QuietHandler(WSGIRequestHandler):
    """No access line per scrape on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """`GET /metrics` on its own port, in a daemon thread: for processes without an API.

    Same exposition and the same bearer token as the gateway's `/metrics`.
    """

    def __init__(self, host: str, port: int, *, token: str | None = None) -> None:
        self._token = token
        server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
        # Binding happens here: an OSError (port taken) reaches the caller before any thread.
        self._server = make_server(
            host, port, self._app, server_class=server_class, handler_class=_QuietHandler
        )
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-server", daemon=True
        )
        self._thread.start()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"metrics are at /metrics\n"]
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        if not token_matches(environ.get("HTTP_AUTHORIZATION", ""), self._token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"metrics token required\n"]
        body, content_type = render()
        start_response("200 OK", [("Content-Type", content_type)])
        return [body if environ["REQUEST_METHOD"] == "GET" else b""]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# --- webhooks ------------------------------------------------------------------------------------
WEBHOOK_ATTEMPTS = Counter(
    "gateway_webhook_delivery_attempts_total",
    "Webhook delivery attempts by outcome "
    "(delivered, http_error, timeout, connection_error, blocked, error)",
    ["outcome"],
)
WEBHOOK_ATTEMPT_DURATION = Histogram(
    "gateway_webhook_delivery_duration_seconds",
    "Duration of one webhook delivery attempt (request sent to answer read)",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
WEBHOOK_DELIVERY_LAG = Histogram(
    "gateway_webhook_delivery_lag_seconds",
    "From an event's creation to its successful delivery to one endpoint",
    buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0, 21600.0, 86400.0, 259200.0),
)
WEBHOOK_BACKLOG = Gauge(
    "gateway_webhook_deliveries_pending",
    "Undelivered webhook deliveries to enabled endpoints: due now, or scheduled for later",
    ["state"],
    multiprocess_mode="livemax",
)
WEBHOOK_ENDPOINTS_FAILING = Gauge(
    "gateway_webhook_endpoints_failing",
    "Webhook endpoints currently marked failing",
    multiprocess_mode="livemax",
)
WEBHOOK_ENDPOINT_TRANSITIONS = Counter(
    "gateway_webhook_endpoint_transitions_total",
    "Webhook endpoints marked failing or recovered",
    ["to"],
)

# --- wallet providers and payouts (adapters/providers, gateway/services/payouts.py) ------------
PROVIDER_CALLS = Counter(
    "gateway_provider_requests_total",
    "Calls to wallet providers by provider, operation and outcome (ok; rejected: a 4xx answer; "
    "unavailable: not reached, 429 or 503; timeout: no answer in time; error: 5xx or the "
    "connection lost after sending; bad_signature: an answer whose signature did not verify)",
    ["provider", "operation", "outcome"],
)
PROVIDER_LATENCY = Histogram(
    "gateway_provider_call_duration_seconds",
    "Duration of one call to a wallet provider (one attempt)",
    ["provider", "operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
PROVIDER_WEBHOOKS = Counter(
    "gateway_provider_webhooks_total",
    "Inbound provider notifications by provider and outcome "
    "(applied, duplicate, ignored, recorded, rejected, rate_limited, deferred)",
    ["provider", "outcome"],
)
PAYOUTS_OPEN = Gauge(
    "gateway_payouts_open",
    "Payouts not final yet, by status (created, processing, unknown), as the recovery job last "
    "counted them",
    ["status"],
    multiprocess_mode="livemax",
)
PAYOUTS = Counter(
    "gateway_payouts_total",
    "Payouts reaching a final state, by provider and status (succeeded, failed)",
    ["provider", "status"],
)
PAYOUT_ANOMALIES = Counter(
    "gateway_payout_anomalies_total",
    "Payouts that need an operator: the provider contradicted a decision already taken, "
    "reported another amount, or the capture was refused by the core",
    ["provider", "kind"],
)
# --- settlement and reconciliation (docs/settlement.md) -----------------------------------------
SETTLEMENT_MESSAGES = Counter(
    "gateway_settlement_messages_total",
    "Settlement messages from the core by format (camt.053.001.08, settlement-events, ...) and "
    "outcome (applied, replayed, rejected)",
    ["format", "outcome"],
)
SETTLEMENT_ENTRIES = Counter(
    "gateway_settlement_entries_total",
    "Booked entries read from the core's messages, by how they were matched (matched, "
    "counterpart, confirmed, unmatched, duplicate, reversal, outside_scope)",
    ["outcome"],
)
RECONCILIATION_BREAKS = Counter(
    "gateway_reconciliation_breaks_total", "Reconciliation breaks detected, by type", ["kind"]
)
RECONCILIATION_BREAKS_OPEN = Gauge(
    "gateway_reconciliation_breaks_open",
    "Open reconciliation breaks by type (the shared database's count: alert on max)",
    ["kind"],
    multiprocess_mode="livemax",
)

# --- transfers (gateway/services/transfers.py, transfer_recovery.py) ----------------------------
TRANSFERS_UNKNOWN = Gauge(
    "gateway_transfers_unknown",
    "Transfers and refunds whose core outcome is unknown or unrecorded (refreshed by the "
    "transfer-recovery worker): money in doubt until GetTransactionStatus resolves it",
    ["kind"],
    multiprocess_mode="max",
)
