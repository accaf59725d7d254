"""How handlers reach the container and the authenticated partner of the request."""

from __future__ import annotations

from typing import cast

import flask

from gateway.container import Container
from gateway.domain.errors import AuthenticationFailed
from gateway.services.partners import Principal

EXTENSION = "wallet_gateway"


def container() -> Container:
    return cast(Container, flask.current_app.extensions[EXTENSION])


def current_partner() -> Principal:
    partner = flask.g.get("partner")
    if partner is None:  # only reachable if an operation forgot its security requirement
        raise AuthenticationFailed("Authentication is required")
    return cast(Principal, partner)
