"""The scope catalogue and which partner kinds may hold which scopes."""

from __future__ import annotations

SCOPES: dict[str, str] = {
    "partner:read": "Read the calling partner's own profile",
    "links:read": "Read account links",
    "links:write": "Create, verify and revoke account links",
    "accounts:read": "Read balance and transactions of linked accounts (within consent)",
    "transfers:read": "Read transfers and refunds",
    "transfers:write": "Create, capture, void and refund transfers",
    "payouts:read": "Read payouts",
    "payouts:write": "Send payouts from bank accounts to wallets (bank channels)",
    "events:read": "Page through events",
    "webhooks:manage": "Manage webhook endpoints",
    "settlements:read": "Read settlement positions",
    "settlement:write": "Push settlement events and ISO 20022 statements (core banking only)",
    "admin:read": "Operator read access",
    "admin:write": "Operator actions (suspend, resolve, replay)",
}

KINDS = ("wallet", "merchant", "bank_channel", "core", "operator")

_PARTNER_API = [
    "partner:read",
    "links:read",
    "links:write",
    "accounts:read",
    "transfers:read",
    "transfers:write",
    "events:read",
    "webhooks:manage",
    "settlements:read",
]
ALLOWED_SCOPES: dict[str, frozenset[str]] = {
    "wallet": frozenset(_PARTNER_API),
    "merchant": frozenset(_PARTNER_API),
    "bank_channel": frozenset(
        ["partner:read", "payouts:read", "payouts:write", "events:read", "webhooks:manage"]
    ),
    "core": frozenset(["partner:read", "settlement:write"]),
    "operator": frozenset(["partner:read", "admin:read", "admin:write"]),
}
DEFAULT_SCOPES = ALLOWED_SCOPES


def check_scopes(kind: str, scopes: list[str]) -> list[str]:
    """Validate requested scopes for a partner kind; returns them sorted and de-duplicated."""
    if kind not in ALLOWED_SCOPES:
        raise ValueError(f"unknown partner kind {kind!r} (one of: {', '.join(KINDS)})")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}")
    forbidden = sorted(set(scopes) - ALLOWED_SCOPES[kind])
    if forbidden:
        raise ValueError(f"a {kind} partner cannot hold: {', '.join(forbidden)}")
    return sorted(set(scopes))
