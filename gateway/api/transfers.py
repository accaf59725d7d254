"""Transfers: debit (linked account -> partner settlement) and credit (the reverse), manual
capture, step-up confirmation, refunds."""

from __future__ import annotations

from typing import Any

from gateway.api.deps import container, current_partner
from gateway.api.idempotent import idempotent
from gateway.api.params import an_instant


def _transfers() -> Any:
    return container().transfers


def create(body: dict[str, Any]) -> Any:
    partner = current_partner()
    return idempotent(
        "transfers.create",
        body,
        # The service stores the 201 for retries in the transaction recording the outcome.
        lambda request: (
            _transfers().create(partner, body, request, response_status=201),
            201,
        ),
        resume=lambda resource_id: (_transfers().resume(partner, resource_id), 201),
    )


def get(transfer_id: str) -> dict[str, Any]:
    return _transfers().get(current_partner(), transfer_id)


def list_transfers(
    limit: int = 50,
    cursor: str | None = None,
    status: str | None = None,
    link_id: str | None = None,
    created_from: str | None = None,
    created_to: str | None = None,
) -> dict[str, Any]:
    return _transfers().page(
        current_partner(),
        cursor=cursor,
        limit=limit,
        status=status,
        link_id=link_id,
        created_from=an_instant("created_from", created_from),
        created_to=an_instant("created_to", created_to),
    )


def confirm(transfer_id: str, body: dict[str, Any]) -> Any:
    partner = current_partner()
    return idempotent(
        "transfers.confirm",
        body,
        lambda _r: (_transfers().confirm(partner, transfer_id, body["code"]), 200),
    )


def capture(transfer_id: str, body: dict[str, Any] | None = None) -> Any:
    partner = current_partner()
    payload = body or {}
    return idempotent(
        "transfers.capture",
        payload,
        lambda _r: (_transfers().capture(partner, transfer_id, payload), 200),
    )


def void(transfer_id: str) -> Any:
    partner = current_partner()
    return idempotent(
        "transfers.void", {}, lambda _r: (_transfers().void(partner, transfer_id), 200)
    )


def create_refund(transfer_id: str, body: dict[str, Any]) -> Any:
    partner = current_partner()
    return idempotent(
        "transfers.create_refund",
        body,
        lambda request: (_transfers().refund(partner, transfer_id, body, request), 201),
        resume=lambda refund_id: (_transfers().get_refund(partner, refund_id), 201),
    )


def list_refunds(transfer_id: str) -> dict[str, Any]:
    return _transfers().list_refunds(current_partner(), transfer_id)


def get_refund(refund_id: str) -> dict[str, Any]:
    return _transfers().get_refund(current_partner(), refund_id)
