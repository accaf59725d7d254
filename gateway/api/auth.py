"""Wiring of authentication into connexion and Flask.

1. connexion's oauth2 security handler verifies the JWT (signature, issuer, audience, expiry)
   and the operation's scopes. That runs on the event loop, so it is CPU-only.
2. A Flask `before_request` hook (in the handler thread) loads the partner: a suspended,
   revoked or rotated partner is refused at once, across all instances. It then applies the
   partner's rate limit. `after_request` adds the RateLimit-* headers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flask
from connexion import context as connexion_context
from connexion.security import OAuthSecurityHandler

from gateway.api.deps import container
from gateway.domain.errors import RateLimited
from gateway.observability.context import request_state_var
from gateway.observability.metrics import RATE_LIMITED
from gateway.security.tokens import TokenService


def security_map(tokens: TokenService) -> dict[str, type]:
    """Security handlers bound to this app's token verifier (no module globals)."""

    def token_info(token: str) -> dict[str, Any]:
        return tokens.verify(token)

    class BoundOAuthHandler(OAuthSecurityHandler):
        def get_tokeninfo_func(self, security_definition: dict[str, Any]) -> Any:
            return token_info

        # connexion inspects the token function's signature on every request; it never changes.
        _accepts_kwarg = staticmethod(_accepts_kwarg_cached)

    return {"oauth2": BoundOAuthHandler}


@functools.lru_cache(maxsize=64)
def _accepts_kwarg_cached(func: Callable[..., Any], keyword: str) -> bool:
    return bool(OAuthSecurityHandler._accepts_kwarg(func, keyword))


def _token_info() -> dict[str, Any] | None:
    try:
        info = connexion_context.context.get("token_info")
    except (LookupError, RuntimeError):
        return None
    return info if isinstance(info, dict) and "sub" in info else None


def load_partner() -> None:
    info = _token_info()
    if info is None:
        return
    gateway = container()
    partner = gateway.partners.principal(info["sub"], int(info["ver"]))
    flask.g.partner = partner
    state = request_state_var.get()
    if state is not None:
        state["partner_id"] = partner.id
    expression = partner.rate_limit or gateway.settings.rate_limit_default
    try:
        flask.g.quota = gateway.rate_limiter.hit("partner", partner.id, expression)
    except RateLimited:
        RATE_LIMITED.labels(partner.id).inc()
        raise


def add_rate_limit_headers(response: flask.Response) -> flask.Response:
    quota = flask.g.get("quota")
    if quota is not None:
        response.headers.update(quota.headers())
    return response


def install(app: flask.Flask) -> None:
    app.before_request(load_partner)
    app.after_request(add_rate_limit_headers)
