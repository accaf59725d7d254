"""Wallet providers: their notifications to us (no OAuth: the adapter verifies them), and name
enquiries for bank channels."""

from __future__ import annotations

from typing import Any

import flask

from gateway.api.deps import container, current_partner


def webhook_post(provider: str) -> Any:
    """`POST /v1/providers/{provider}/webhooks`."""
    return _webhook(provider)


def webhook_put(provider: str) -> Any:
    """`PUT /v1/providers/{provider}/webhooks` (GSMA Mobile Money API callbacks)."""
    return _webhook(provider)


def _webhook(provider: str) -> Any:
    """Verify, dedupe, apply (or 401)."""
    ack = container().provider_webhooks.receive(
        provider,
        flask.request.method,
        dict(flask.request.headers.items()),
        flask.request.get_data(cache=False),
    )
    return None, ack.status


def account_name(provider: str, identifier: str, type: str = "msisdn") -> dict[str, Any]:
    return container().payouts.lookup_name(current_partner(), provider, type, identifier)
