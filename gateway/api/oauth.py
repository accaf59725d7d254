"""OAuth 2.0 token endpoint (client credentials, RFC 6749 §4.4) and the JWKS."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_plus

import flask

from gateway.api.deps import container
from gateway.domain.errors import AuthenticationFailed, InvalidRequest

# Argon2 makes each attempt expensive; this bounds how many one client id can force.
TOKEN_RATE_LIMIT = "30/minute"  # noqa: S105 - a rate, not a password


def _basic_credentials(header: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        client_id, client_secret = decoded.split(":", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise AuthenticationFailed(
            "Malformed Basic credentials",
            code="invalid_client",
            error="invalid_client",
            headers={"WWW-Authenticate": 'Basic realm="wallet-gateway"'},
        ) from None
    return unquote_plus(client_id), unquote_plus(client_secret)


def _client_credentials(body: dict[str, Any]) -> tuple[str, str]:
    header = flask.request.headers.get("Authorization", "")
    in_body = "client_id" in body or "client_secret" in body
    if header[:6].lower() == "basic ":
        if in_body:
            raise InvalidRequest(
                "Use one client authentication method, not both", error="invalid_request"
            )
        return _basic_credentials(header)
    if "client_id" in body and "client_secret" in body:
        return str(body["client_id"]), str(body["client_secret"])
    raise AuthenticationFailed(
        "Client authentication is required (HTTP Basic or client_id/client_secret)",
        code="invalid_client",
        error="invalid_client",
        headers={"WWW-Authenticate": 'Basic realm="wallet-gateway"'},
    )


def token(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    gateway = container()
    if body.get("grant_type") != "client_credentials":
        raise InvalidRequest(
            "Only the client_credentials grant is supported",
            code="unsupported_grant_type",
            error="unsupported_grant_type",
        )
    client_id, client_secret = _client_credentials(body)
    gateway.rate_limiter.hit("token", client_id[:64], TOKEN_RATE_LIMIT)
    partner = gateway.partners.authenticate(client_id, client_secret)
    requested = set(str(body.get("scope") or "").split()) or set(partner.scopes)
    if not requested <= set(partner.scopes):
        raise InvalidRequest(
            "The requested scope exceeds what this client may hold",
            code="invalid_scope",
            error="invalid_scope",
        )
    issued = gateway.tokens.issue(
        partner_id=partner.id,
        kind=partner.kind,
        scopes=sorted(requested),
        version=partner.token_version,
    )
    response = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    }
    return response, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"}


def jwks() -> tuple[dict[str, Any], int, dict[str, str]]:
    return container().tokens.keys.jwks(), 200, {"Cache-Control": "public, max-age=300"}
