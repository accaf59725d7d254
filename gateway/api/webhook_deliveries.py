"""Operator API for webhooks: endpoint health, deliveries with their attempts, replay."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.api.deps import container, current_partner
from gateway.api.idempotent import idempotent
from gateway.api.params import an_instant
from gateway.domain.errors import InvalidRequest
from gateway.store.idempotency import IdempotencyRequest


def _actor() -> str:
    return f"operator:{current_partner().id}"


def list_endpoints(
    limit: int = 50,
    cursor: str | None = None,
    partner_id: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    return container().webhook_endpoints.operator_page(
        cursor=cursor, limit=limit, partner_id=partner_id, status=status
    )


def list_deliveries(
    limit: int = 50,
    cursor: str | None = None,
    event_id: str | None = None,
    endpoint_id: str | None = None,
    partner_id: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    return container().webhooks.page(
        cursor=cursor,
        limit=limit,
        event_id=event_id,
        endpoint_id=endpoint_id,
        partner_id=partner_id,
        status=status,
    )


def _moment(body: dict[str, Any], name: str) -> datetime:
    moment = an_instant(name, body[name], in_body=True, required=True)
    assert moment is not None  # required: refused above when missing
    return moment


def replay(body: dict[str, Any]) -> Any:
    gateway = container()
    actor = _actor()
    by_event = "event_id" in body
    by_range = "since" in body or "until" in body
    if by_event == by_range or (by_range and not ("since" in body and "until" in body)):
        raise InvalidRequest(
            "Give either `event_id`, or both `since` and `until`",
            code="invalid_replay_selection",
            errors=[{"pointer": "", "detail": "needs event_id, or since and until"}],
        )
    since = _moment(body, "since") if by_range else None
    until = _moment(body, "until") if by_range else None

    def run(_request: IdempotencyRequest) -> tuple[dict[str, Any], int]:
        if by_event:
            result = gateway.webhooks.replay_event(
                body["event_id"], actor=actor, endpoint_id=body.get("endpoint_id")
            )
        else:
            assert since is not None and until is not None
            result = gateway.webhooks.replay_range(
                since=since, until=until, actor=actor, endpoint_id=body.get("endpoint_id")
            )
        return result.as_dict(), 200

    return idempotent("webhook_deliveries.replay", body, run)
