"""The calling partner's own profile."""

from __future__ import annotations

from typing import Any

from gateway.api.deps import container, current_partner


def me() -> dict[str, Any]:
    return container().partners.get(current_partner().id)
