"""Payouts (bank channels): from a customer's bank account to a wallet at a provider."""

from __future__ import annotations

from typing import Any

from gateway.api.deps import container, current_partner
from gateway.api.idempotent import idempotent
from gateway.api.params import an_instant
from gateway.services.payouts import PayoutService


def _payouts() -> PayoutService:
    return container().payouts


def create(body: dict[str, Any]) -> Any:
    partner = current_partner()
    return idempotent(
        "payouts.create",
        body,
        lambda request: (_payouts().create(partner, body, request), 201),
        resume=lambda payout_id: (_payouts().resume(partner, payout_id), 201),
    )


def get(payout_id: str) -> dict[str, Any]:
    return _payouts().get(current_partner(), payout_id)


def list_payouts(
    limit: int = 50,
    cursor: str | None = None,
    status: str | None = None,
    provider: str | None = None,
    partner_reference: str | None = None,
    created_from: str | None = None,
    created_to: str | None = None,
) -> dict[str, Any]:
    return _payouts().page(
        current_partner(),
        cursor=cursor,
        limit=limit,
        status=status,
        provider=provider,
        partner_reference=partner_reference,
        created_from=an_instant("created_from", created_from),
        created_to=an_instant("created_to", created_to),
    )
