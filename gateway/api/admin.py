"""Operator API: partners (list, inspect, suspend/resume/revoke), links and their risk hits."""

from __future__ import annotations

from typing import Any

from gateway.api.deps import container, current_partner


def _actor() -> str:
    return f"operator:{current_partner().id}"


def list_partners(
    limit: int = 50, cursor: str | None = None, status: str | None = None, kind: str | None = None
) -> dict[str, Any]:
    return container().partners.page(cursor=cursor, limit=limit, status=status, kind=kind)


def get_partner(partner_id: str) -> dict[str, Any]:
    return container().partners.get(partner_id)


def update_partner(partner_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return container().partners.set_status(
        partner_id, body["status"], actor=_actor(), reason=body["reason"]
    )


def update_link(link_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return container().links.operator_update(
        link_id, body["status"], body["reason"], actor=_actor()
    )


def link_risk_events(link_id: str, limit: int = 50) -> dict[str, Any]:
    return container().transfers.risk_events(link_id, limit)


def sandbox_messages(limit: int = 20) -> dict[str, Any]:
    from adapters.notifiers.sandbox import SandboxNotifier
    from gateway.domain.errors import NotFound

    notifier = container().notifier
    if not isinstance(notifier, SandboxNotifier):
        raise NotFound("The sandbox notifier is not in use", code="sandbox_disabled")
    return {"data": notifier.messages(limit=limit)}
