"""Correlation ids, metrics, health probes and the absence of secrets in logs."""

from __future__ import annotations

import json

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_request_id_is_echoed_or_minted(client) -> None:  # type: ignore[no-untyped-def]
    assert (
        client.get("/health/live", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    minted = client.get("/health/live", headers={"X-Request-Id": "has spaces"}).headers[
        "x-request-id"
    ]
    assert minted.startswith("req_")


def test_traceparent_is_continued(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/health/live", headers={"traceparent": TRACEPARENT})
    returned = response.headers["traceparent"]
    assert returned.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert returned != TRACEPARENT  # our own span id


def test_problem_carries_the_request_id(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/v1/partners/me", headers={"X-Request-Id": "trace-me-1"})
    assert response.json()["request_id"] == "trace-me-1"


def test_metrics_count_requests_by_operation_and_status(client) -> None:  # type: ignore[no-untyped-def]
    client.get("/health/live")
    client.get("/v1/partners/me")
    text = client.get("/metrics").text
    assert 'gateway_http_requests_total{method="GET",operation="health.live",status="200"}' in text
    assert 'gateway_http_requests_total{method="GET",operation="partners.me",status="401"}' in text
    assert "gateway_http_request_duration_seconds_bucket" in text


def test_readiness_reports_each_check(client, container) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "core_banking": "ok",
    }
    real = container.health_checks["core_banking"]
    container.health_checks["core_banking"] = lambda: "unreachable"
    try:
        failing = client.get("/health/ready")
    finally:
        container.health_checks["core_banking"] = real
    assert failing.status_code == 503
    assert failing.json()["code"] == "not_ready"
    assert failing.json()["checks"]["core_banking"] == "unreachable"


def test_logs_never_contain_secrets_tokens_or_account_numbers(
    client, make_partner, captured_logs
) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    operator = make_partner(kind="operator")
    planted_account = "6222029876543210"
    # a secret planted where a careless log line would pick it up: the request id header
    client.get("/health/live", headers={"X-Request-Id": partner.secret})
    client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(partner.id, partner.secret)
    )
    client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(partner.id, partner.secret + "x"),
    )
    client.get("/v1/partners/me", headers=partner.auth)
    client.patch(
        f"/admin/v1/partners/{partner.id}",
        content=json.dumps(
            {"status": "active", "reason": planted_account, "account": planted_account}
        ),
        headers={**operator.auth, "Content-Type": "application/json"},
    )
    logs = captured_logs()
    assert "http_request" in logs  # the access log did run
    for planted in (partner.secret, partner.token, operator.token, planted_account):
        assert planted not in logs
