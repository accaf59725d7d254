"""Reading the outbox: partners page through their own events, operators through everyone's.

`GET /v1/events` is how a partner catches up without webhooks (or after an outage): the same
envelopes the webhooks carry, newest first by default, filterable by type and resource.

Oldest-first reads trail the present by `settle` (GATEWAY_EVENTS_SETTLE_SECONDS): an event's
id is taken inside its transaction, which commits a moment later, so a younger event may still
appear *behind* one already read. Leaving the last few seconds out keeps an oldest-first
cursor from stepping past it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import select

from gateway.domain.clock import Clock
from gateway.domain.errors import NotFound
from gateway.store.db import Database
from gateway.store.events import envelope
from gateway.store.pagination import page
from gateway.store.tables import Event


class EventService:
    def __init__(self, db: Database, clock: Clock, settle: timedelta) -> None:
        self.db = db
        self.clock = clock
        self.settle = settle

    def page(
        self,
        *,
        partner_id: str | None,
        cursor: str | None,
        limit: int,
        types: list[str] | None = None,
        resource_id: str | None = None,
        order: Literal["asc", "desc"] = "desc",
        any_partner: bool = False,
    ) -> dict[str, Any]:
        """One page of events of `partner_id` (operators: `any_partner=True`, optional filter)."""
        query = select(Event)
        if partner_id is not None or not any_partner:
            query = query.where(Event.partner_id == partner_id)
        if types:
            query = query.where(Event.type.in_(types))
        if resource_id:
            query = query.where(Event.resource_id == resource_id)
        if order == "asc" and self.settle:
            query = query.where(Event.created_at <= self.clock.now() - self.settle)
        with self.db.read() as session:
            return page(
                session,
                query,
                Event.id,
                cursor=cursor,
                limit=limit,
                render=envelope,
                newest_first=order == "desc",
            )

    def get(self, partner_id: str, event_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            event = session.get(Event, event_id)
            if event is None or event.partner_id != partner_id:
                raise NotFound("No such event", code="event_not_found")
            return envelope(event)
