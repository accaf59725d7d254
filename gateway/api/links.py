"""Account links: create (OTP to the bank-registered mobile), verify, read, revoke; balance and
transactions within consent."""

from __future__ import annotations

from typing import Any

from gateway.api.deps import container, current_partner
from gateway.api.idempotent import idempotent
from gateway.api.params import a_date


def _links() -> Any:
    return container().links


def create(body: dict[str, Any]) -> Any:
    partner = current_partner()
    return idempotent(
        "links.create",
        body,
        lambda request: (_links().create(partner, body, request), 201),
        resume=lambda link_id: (_links().get(partner, link_id), 201),
    )


def verify(link_id: str, body: dict[str, Any]) -> Any:
    partner = current_partner()
    return idempotent(
        "links.verify",
        body,
        lambda _request: (_links().verify(partner, link_id, body["code"]), 200),
    )


def resend_otp(link_id: str) -> Any:
    partner = current_partner()
    return idempotent(
        "links.resend_otp", {}, lambda _request: (_links().resend(partner, link_id), 200)
    )


def get(link_id: str) -> dict[str, Any]:
    return _links().get(current_partner(), link_id)


def list_links(
    limit: int = 50, cursor: str | None = None, status: str | None = None
) -> dict[str, Any]:
    return _links().page(current_partner(), cursor=cursor, limit=limit, status=status)


def revoke(link_id: str) -> dict[str, Any]:
    return _links().revoke(current_partner(), link_id)


def balance(link_id: str) -> dict[str, Any]:
    return _links().balance(current_partner(), link_id)


def transactions(
    link_id: str, limit: int = 50, cursor: str | None = None, **period: str
) -> dict[str, Any]:
    from_date = a_date("from", period.get("from"))
    to_date = a_date("to", period.get("to"))
    return _links().transactions(
        current_partner(), link_id, from_date=from_date, to_date=to_date, cursor=cursor, limit=limit
    )
