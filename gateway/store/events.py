"""The transactional outbox: events are written in the same transaction as the change.

`record_event` is the only way events are created. Its caller passes the resource's new
`version` as the event `sequence`, so a late delivery can never look newer than a later one.

Fan-out happens here too: in the same transaction, one `webhook_deliveries` row is added for
every enabled webhook endpoint of the partner whose filter matches the event type. An event and
the deliveries it owes therefore commit (or roll back) together, so no event can be lost
between the outbox and the dispatcher, and no cursor over commit order is needed (ids are
time-ordered at creation, not at commit, so a cursor could skip a late-committing event).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import resources
from gateway.domain.clock import rfc3339
from gateway.domain.ids import new_id
from gateway.observability.logging import get_logger
from gateway.store.tables import Event, WebhookDelivery, WebhookEndpoint

WILDCARD = "*"
log = get_logger("gateway.events")


@functools.cache
def event_types() -> frozenset[str]:
    """Every event type the gateway sends: one JSON Schema per type in `contracts/events/`."""
    directory = resources.contracts_dir() / "events"
    return frozenset(
        path.name.removesuffix(".json")
        for path in directory.glob("*.json")
        if path.name != "envelope.json"
    )


def type_matches(filters: Iterable[str], type: str) -> bool:
    """Whether an endpoint filter (`*`, `transfer.*` or exact types) selects an event type."""
    for pattern in filters:
        if pattern in (WILDCARD, type):
            return True
        if pattern.endswith(".*") and type.startswith(pattern[:-1]):
            return True
    return False


def record_event(
    session: Session,
    *,
    type: str,
    resource_type: str,
    resource_id: str,
    sequence: int,
    data: dict[str, Any],
    partner_id: str | None,
    at: datetime,
    deliver: bool = True,
) -> Event:
    """Add an event to the caller's transaction. `data` is the full resource snapshot.

    With `deliver` (the default) the event is also queued for the partner's matching webhook
    endpoints in the same transaction; events without a partner are never delivered.

    A `type` missing from the catalogue (`contracts/events/`) is logged as an error
    (`event_type_not_in_catalogue`) but still recorded, deliberately not refused: the event
    shares the transaction of the state change it announces, so raising here would roll back
    a change that has already happened at the core (money moved, a hold placed) and leave our
    record of it behind the bank's. A missing schema is a documentation defect; losing a state
    change is a money defect. Tests keep the catalogue complete instead:
    `tests/contract/test_event_schemas.py` derives every type the services can emit from the
    status enums and fails when one has no schema. Partners cannot subscribe to such a type
    (`normalize_event_types` refuses it) but still receive it through `*` and `<resource>.*`.
    """
    if type not in event_types():
        log.error(
            "event_type_not_in_catalogue",
            event_type=type,
            resource_type=resource_type,
            resource_id=resource_id,
        )
    event = Event(
        id=new_id("evt"),
        partner_id=partner_id,
        type=type,
        resource_type=resource_type,
        resource_id=resource_id,
        sequence=sequence,
        data=data,
        created_at=at,
    )
    session.add(event)
    if deliver and partner_id is not None:
        queue_deliveries(session, event)
    return event


def queue_deliveries(session: Session, event: Event) -> list[WebhookDelivery]:
    """Owe `event` to each enabled, matching endpoint of its partner (caller's transaction)."""
    endpoints = session.scalars(
        select(WebhookEndpoint).where(
            WebhookEndpoint.partner_id == event.partner_id,
            WebhookEndpoint.enabled.is_(True),
            WebhookEndpoint.deleted_at.is_(None),
        )
    ).all()
    deliveries = []
    for endpoint in endpoints:
        if not type_matches(endpoint.event_types, event.type):
            continue
        delivery = new_delivery(event, endpoint.id, endpoint.partner_id, event.created_at)
        session.add(delivery)
        deliveries.append(delivery)
    return deliveries


def new_delivery(event: Event, endpoint_id: str, partner_id: str, at: datetime) -> WebhookDelivery:
    return WebhookDelivery(
        id=new_id("whd"),
        event_id=event.id,
        endpoint_id=endpoint_id,
        partner_id=partner_id,
        status="pending",
        attempts=0,
        schedule_step=0,
        next_attempt_at=at,
        created_at=at,
        updated_at=at,
    )


def envelope(event: Event) -> dict[str, Any]:
    """The wire form of an event: the webhook body and the items of `GET /v1/events`."""
    return {
        "id": event.id,
        "type": event.type,
        "created_at": rfc3339(event.created_at),
        "sequence": event.sequence,
        "resource": {"type": event.resource_type, "id": event.resource_id},
        "data": event.data,
    }


def envelope_bytes(event: Event) -> bytes:
    """The exact bytes delivered (and signed): canonical JSON, so every retry is identical."""
    return json.dumps(
        envelope(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
