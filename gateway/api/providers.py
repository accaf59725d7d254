"""Wallet providers: their notifications to us (no OAuth: the adapter verifies them), and name
enquiries for bank channels."""

from __future__ import annotations

from typing import Any

import flask

from gateway.api.deps import container, current_partner
from gateway.domain.errors import GatewayError


def webhook_post(provider: str) -> Any:
    """`POST /v1/providers/{provider}/webhooks`."""
    return _webhook(provider)


def webhook_put(provider: str) -> Any:
    """`PUT /v1/providers/{provider}/webhooks` (GSMA Mobile Money API callbacks)."""
    return _webhook(provider)


def _webhook(provider: str) -> Any:
    """Verify, dedupe, apply (or 401), answered the way the provider expects."""
    webhooks = container().provider_webhooks
    try:
        ack = webhooks.receive(
            provider,
            flask.request.method,
            dict(flask.request.headers.items()),
            flask.request.get_data(cache=True),
        )
    except GatewayError as exc:
        reply = webhooks.reply(provider, accepted=False, status=exc.status, message=exc.detail)
        if reply is None:
            raise  # the gateway's problem+json
        return _response(reply.status, reply.body, reply.content_type, exc.headers)
    reply = webhooks.reply(provider, accepted=True, status=ack.status, message=ack.outcome)
    if reply is None:
        return _response(ack.status, b"", None, {})
    return _response(reply.status, reply.body, reply.content_type, {})


def _response(
    status: int, body: bytes, content_type: str | None, headers: dict[str, str]
) -> flask.Response:
    response = flask.Response(body, status=status, headers=headers)
    if content_type:
        response.headers["Content-Type"] = content_type
    elif not body:
        response.headers.pop("Content-Type", None)
    return response


def keep_raw_body() -> None:
    """Flask `before_request`: read a provider notification's body before anything parses it
    as a form (connexion does, for `application/x-www-form-urlencoded`), so the adapter
    verifies the exact bytes that arrived."""
    path = flask.request.path
    if path.startswith("/v1/providers/") and path.endswith("/webhooks"):
        flask.request.get_data(cache=True, parse_form_data=False)


def account_name(provider: str, identifier: str, type: str = "msisdn") -> dict[str, Any]:
    return container().payouts.lookup_name(current_partner(), provider, type, identifier)
