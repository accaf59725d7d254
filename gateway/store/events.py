"""The transactional outbox: events are written in the same transaction as the change.

`record_event` is the only way events are created. Its caller passes the resource's new
`version` as the event `sequence`, so a late delivery can never look newer than a later one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway.domain.ids import new_id
from gateway.store.tables import Event


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
) -> Event:
    """Add an event to the caller's transaction. `data` is the full resource snapshot."""
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
    return event
