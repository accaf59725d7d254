"""`/v1/webhook-endpoints`: a partner manages its webhook receivers.

The two responses that carry a signing secret (create, rotate-secret) are idempotent, but the
secret itself is never written to the Idempotency-Key store: the stored response holds the
endpoint without it. A retry that would replay such a response therefore answers
`409 secret_not_replayable` naming the endpoint instead; the client rotates the secret (with a
new key) to obtain a usable one. Showing a secret twice, or keeping a plaintext copy outside
the vault for 24 hours, would both be worse than one extra call after a lost response.
"""

from __future__ import annotations

from typing import Any

from gateway.api.deps import container, current_partner
from gateway.api.idempotent import idempotent
from gateway.domain.errors import Conflict
from gateway.store.idempotency import IdempotencyRequest

RESOURCE = "webhook_endpoint"


def _with_secret(result: Any, issued: dict[str, str]) -> Any:
    """Add the secret to a fresh response; refuse to replay a response that had one."""
    if "secret" in issued:
        body, status, headers = result
        return {**body, "secret": issued["secret"]}, status, headers
    if isinstance(result, tuple):  # a replayed (or resumed) success: its secret was not kept
        raise Conflict(
            f"This request already succeeded for webhook endpoint {result[0]['id']}; its "
            "secret is shown only once. Rotate the secret to get a new one.",
            code="secret_not_replayable",
            endpoint_id=result[0]["id"],
        )
    return result  # a replayed problem is returned as it was


def create_endpoint(body: dict[str, Any]) -> Any:
    gateway = container()
    partner_id = current_partner().id
    issued: dict[str, str] = {}

    def run(request: IdempotencyRequest) -> tuple[dict[str, Any], int]:
        view, secret = gateway.webhook_endpoints.create(
            partner_id,
            url=body["url"],
            event_types=body["event_types"],
            enabled=body.get("enabled", True),
            description=body.get("description"),
            on_created=lambda session, endpoint_id: gateway.idempotency.attach(
                session, request, RESOURCE, endpoint_id
            ),
        )
        issued["secret"] = secret
        return view, 201

    def resume(endpoint_id: str) -> tuple[dict[str, Any], int]:
        return gateway.webhook_endpoints.get(partner_id, endpoint_id), 201

    return _with_secret(idempotent("webhook_endpoints.create", body, run, resume), issued)


def list_endpoints(limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    return container().webhook_endpoints.page(current_partner().id, cursor=cursor, limit=limit)


def get_endpoint(endpoint_id: str) -> dict[str, Any]:
    return container().webhook_endpoints.get(current_partner().id, endpoint_id)


def update_endpoint(endpoint_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return container().webhook_endpoints.update(current_partner().id, endpoint_id, body)


def delete_endpoint(endpoint_id: str) -> Any:
    container().webhook_endpoints.delete(current_partner().id, endpoint_id)
    return None, 204


def rotate_secret(endpoint_id: str) -> Any:
    gateway = container()
    partner_id = current_partner().id
    issued: dict[str, str] = {}

    def run(request: IdempotencyRequest) -> tuple[dict[str, Any], int]:
        view, secret = gateway.webhook_endpoints.rotate_secret(
            partner_id,
            endpoint_id,
            on_rotated=lambda session, rotated_id: gateway.idempotency.attach(
                session, request, RESOURCE, rotated_id
            ),
        )
        issued["secret"] = secret
        return view, 200

    def resume(rotated_id: str) -> tuple[dict[str, Any], int]:
        return gateway.webhook_endpoints.get(partner_id, rotated_id), 200

    payload = {"endpoint_id": endpoint_id}
    return _with_secret(idempotent("webhook_endpoints.rotate_secret", payload, run, resume), issued)
