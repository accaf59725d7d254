"""/v1/webhook-endpoints: create (secret once), list, get, update, delete, rotate the secret."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.domain.clock import SystemClock
from gateway.security.ssrf import TargetPolicy
from gateway.store.tables import AuditEntry, IdempotencyRecord, VaultEntry, WebhookEndpoint
from tests.webhook_sink import WebhookSink, WebhookWorld, permissive_policy

URL = "https://hooks.partner.example/bank"


def _public_dns(host: str, port: int) -> list[str]:
    return ["93.184.216.34"] if host.endswith(".example") else ["10.0.0.8"]


@pytest.fixture
def endpoints(container: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The production policy (https only, no private targets) over a fake DNS."""
    monkeypatch.setattr(container.webhook_endpoints, "policy", TargetPolicy(resolver=_public_dns))
    yield container.webhook_endpoints
    with container.db.transaction() as session:
        for endpoint in session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.deleted_at.is_(None))
        ):
            endpoint.enabled = False  # nothing created here may receive later tests' events


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def _create(client: Any, partner: Any, body: dict[str, Any], key: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/webhook-endpoints", json=body, headers={**partner.auth, **(key or _key())}
    )


def test_the_secret_is_shown_once_and_stored_only_in_the_vault(  # type: ignore[no-untyped-def]
    client, container, make_partner, endpoints, captured_logs
) -> None:
    partner = make_partner()
    key = _key()
    body = {"url": URL, "event_types": ["transfer.*", "link.active"], "description": "main"}
    created = _create(client, partner, body, key)
    assert created.status_code == 201, created.text
    view = created.json()
    secret = view.pop("secret")
    assert secret.startswith("whsec_")
    assert view["event_types"] == ["link.active", "transfer.*"]
    assert (view["enabled"], view["status"], view["url"]) == (True, "healthy", URL)

    fetched = client.get(f"/v1/webhook-endpoints/{view['id']}", headers=partner.auth).json()
    assert "secret" not in fetched and fetched == view
    listed = client.get("/v1/webhook-endpoints", headers=partner.auth).json()["data"]
    assert [e["id"] for e in listed] == [view["id"]]

    # A retry with the same key does not show the secret again, and says what to do.
    again = _create(client, partner, body, key)
    assert again.status_code == 409
    assert again.json()["code"] == "secret_not_replayable"
    assert again.json()["endpoint_id"] == view["id"]
    assert secret not in again.text
    changed = _create(client, partner, {**body, "description": "other"}, key)
    assert changed.status_code == 422 and changed.json()["code"] == "idempotency_key_reused"

    with container.db.read() as session:
        stored = [
            json.dumps(r.response_body)
            for r in session.scalars(
                select(IdempotencyRecord).where(IdempotencyRecord.partner_id == partner.id)
            )
        ]
        row = session.get(WebhookEndpoint, view["id"])
        vault = session.get(VaultEntry, row.secret_ref)
        assert container.vault.reveal(session, row.secret_ref) == secret
        audit = session.scalars(select(AuditEntry).where(AuditEntry.target_id == view["id"])).all()
    assert stored and not any(secret in text or "whsec_" in text for text in stored)
    assert vault.purpose == "webhook_secret" and secret not in vault.ciphertext
    assert all(secret not in str(getattr(row, c.name)) for c in row.__table__.columns)
    assert [a.action for a in audit] == ["webhook_endpoint.created"]
    assert "bank" not in json.dumps(audit[0].details)  # the host only, never the path
    assert secret not in captured_logs()


@pytest.mark.parametrize(
    ("body", "status", "code", "pointer"),
    [
        ({"url": "http://hooks.partner.example/in", "event_types": ["*"]}, 422,
         "webhook_url_not_https", "/url"),
        ({"url": "https://intranet.bank.local/in", "event_types": ["*"]}, 422,
         "webhook_target_forbidden", "/url"),
        ({"url": "https://169.254.169.254/latest", "event_types": ["*"]}, 422,
         "webhook_target_forbidden", "/url"),
        ({"url": "https://[::1]/in", "event_types": ["*"]}, 422, "webhook_target_forbidden",
         "/url"),
        ({"url": URL, "event_types": ["transfer.succeeded", "transfer.teleported"]}, 422,
         "unknown_event_type", "/event_types/1"),
        ({"url": URL, "event_types": ["nothing.*"]}, 422, "unknown_event_type",
         "/event_types/0"),
        ({"url": URL, "event_types": []}, 400, "validation_failed", "/event_types"),
        ({"url": URL}, 400, "validation_failed", "/event_types"),
        ({"url": URL, "event_types": ["*"], "colour": "red"}, 400, "validation_failed",
         "/colour"),
    ],
)  # fmt: skip
def test_bad_endpoints_are_refused_with_a_pointer(  # type: ignore[no-untyped-def]
    client, make_partner, endpoints, body, status, code, pointer
) -> None:
    response = _create(client, make_partner(), body)
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["code"] == code
    assert pointer in [e.get("pointer") for e in problem.get("errors", [])]


def test_an_idempotency_key_is_required(client, make_partner, endpoints) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    response = client.post(
        "/v1/webhook-endpoints", json={"url": URL, "event_types": ["*"]}, headers=partner.auth
    )
    assert response.status_code == 400


def test_a_star_subscribes_to_everything(client, make_partner, endpoints) -> None:  # type: ignore[no-untyped-def]
    view = _create(client, make_partner(), {"url": URL, "event_types": ["link.active", "*"]}).json()
    assert view["event_types"] == ["*"]


def test_update_and_delete(client, make_partner, endpoints) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    view = _create(client, partner, {"url": URL, "event_types": ["*"]}).json()
    path = f"/v1/webhook-endpoints/{view['id']}"
    patched = client.patch(
        path,
        json={"enabled": False, "description": "paused", "event_types": ["payout.*"]},
        headers=partner.auth,
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["enabled"], patched.json()["description"]) == (False, "paused")
    assert patched.json()["event_types"] == ["payout.*"]
    refused = client.patch(path, json={"url": "https://10.0.0.1/in"}, headers=partner.auth)
    assert refused.status_code == 422 and refused.json()["code"] == "webhook_target_forbidden"
    assert client.get(path, headers=partner.auth).json()["url"] == URL
    assert client.patch(path, json={}, headers=partner.auth).status_code == 400

    assert client.delete(path, headers=partner.auth).status_code == 204
    assert client.get(path, headers=partner.auth).status_code == 404
    assert client.delete(path, headers=partner.auth).status_code == 404
    assert client.get("/v1/webhook-endpoints", headers=partner.auth).json()["data"] == []


def test_another_partners_endpoint_does_not_exist(client, make_partner, endpoints) -> None:  # type: ignore[no-untyped-def]
    owner, stranger = make_partner(), make_partner()
    view = _create(client, owner, {"url": URL, "event_types": ["*"]}).json()
    path = f"/v1/webhook-endpoints/{view['id']}"
    assert client.get(path, headers=stranger.auth).status_code == 404
    assert client.patch(path, json={"enabled": False}, headers=stranger.auth).status_code == 404
    assert client.delete(path, headers=stranger.auth).status_code == 404
    rotate = client.post(f"{path}/rotate-secret", headers={**stranger.auth, **_key()})
    assert rotate.status_code == 404
    assert client.get("/v1/webhook-endpoints", headers=stranger.auth).json()["data"] == []
    assert client.get(path, headers=owner.auth).json()["enabled"] is True


def test_rotation_returns_a_new_secret_once_and_keeps_the_old_one_for_a_day(  # type: ignore[no-untyped-def]
    client, container, make_partner, endpoints
) -> None:
    partner = make_partner()
    created = _create(client, partner, {"url": URL, "event_types": ["*"]}).json()
    key = _key()
    path = f"/v1/webhook-endpoints/{created['id']}/rotate-secret"
    rotated = client.post(path, headers={**partner.auth, **key})
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != created["secret"]
    overlap_ends = datetime.fromisoformat(body["previous_secret_expires_at"])
    rotated_at = datetime.fromisoformat(body["secret_rotated_at"])
    assert overlap_ends - rotated_at == timedelta(hours=24)
    replay = client.post(path, headers={**partner.auth, **key})
    assert replay.status_code == 409 and replay.json()["code"] == "secret_not_replayable"
    assert body["secret"] not in replay.text


def test_at_most_twenty_endpoints_per_partner(client, make_partner, endpoints) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    for _ in range(20):
        endpoints.create(partner.id, url=URL, event_types=["*"])
    response = _create(client, partner, {"url": URL, "event_types": ["*"]})
    assert response.status_code == 422 and response.json()["code"] == "too_many_webhook_endpoints"


def test_the_scope_is_required(client, make_partner, endpoints) -> None:  # type: ignore[no-untyped-def]
    reader = make_partner(scopes=["events:read"])
    assert client.get("/v1/webhook-endpoints", headers=reader.auth).status_code == 403


def test_disabling_through_the_api_stops_deliveries(  # type: ignore[no-untyped-def]
    client, container, make_partner, monkeypatch
) -> None:
    monkeypatch.setattr(container.webhook_endpoints, "policy", permissive_policy())
    world = WebhookWorld(container)
    partner = make_partner()
    with WebhookSink() as sink:
        view = _create(client, partner, {"url": sink.url, "event_types": ["*"]}).json()
        path = f"/v1/webhook-endpoints/{view['id']}"
        assert client.patch(path, json={"enabled": False}, headers=partner.auth).status_code == 200
        world.emit(partner.id, at=SystemClock().now())
        world.dispatcher(SystemClock()).run_once()
        assert sink.received == []
        assert client.delete(path, headers=partner.auth).status_code == 204
