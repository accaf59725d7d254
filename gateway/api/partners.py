"""The calling partner's own profile."""

from __future__ import annotations

from typing import Any

from gateway.api.deps import current_partner
from gateway.services.partners import public_view


def me() -> dict[str, Any]:
    # The request guard has just read this partner (active, current token version): its
    # profile comes from that read rather than a second one.
    return public_view(current_partner())
