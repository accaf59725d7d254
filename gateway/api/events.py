"""`/v1/events` (a partner's own events) and `/admin/v1/events` (operators, every partner)."""

from __future__ import annotations

from typing import Any, Literal

from gateway.api.deps import container, current_partner


def list_events(
    limit: int = 50,
    cursor: str | None = None,
    type: list[str] | None = None,
    resource_id: str | None = None,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    return container().events.page(
        partner_id=current_partner().id,
        cursor=cursor,
        limit=limit,
        types=type,
        resource_id=resource_id,
        order=order,
    )


def get_event(event_id: str) -> dict[str, Any]:
    return container().events.get(current_partner().id, event_id)


def admin_list_events(
    limit: int = 50,
    cursor: str | None = None,
    type: list[str] | None = None,
    partner_id: str | None = None,
    resource_id: str | None = None,
) -> dict[str, Any]:
    return container().events.page(
        partner_id=partner_id,
        cursor=cursor,
        limit=limit,
        types=type,
        resource_id=resource_id,
        any_partner=True,
    )
