"""`assert_event_matches_schema(event)`: the contract check other features' tests call.

Accepts an event envelope as the API and webhooks carry it (a dict, or the raw webhook body),
or an `Event` row, and validates it against `contracts/events/<type>.json` (which includes the
envelope schema), plus what JSON Schema cannot say: `created_at` is RFC 3339 with a zone and
`data.id` is the resource's id.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from gateway import resources
from gateway.domain.ids import new_id

SCHEMA_DIR: Path = resources.contracts_dir() / "events"


@functools.cache
def registry() -> Registry:
    entries = []
    for path in sorted(SCHEMA_DIR.rglob("*.json")):
        name = path.relative_to(SCHEMA_DIR).as_posix()
        entries.append((name, Resource.from_contents(json.loads(path.read_text()))))
    return Registry().with_resources(entries)


@functools.cache
def validator(event_type: str) -> Draft202012Validator:
    path = SCHEMA_DIR / f"{event_type}.json"
    assert path.exists(), f"no schema for event type {event_type!r}: add {path}"
    return Draft202012Validator(json.loads(path.read_text()), registry=registry())


def as_envelope(event: Any) -> dict[str, Any]:
    if isinstance(event, bytes | str):
        return dict(json.loads(event))
    if isinstance(event, dict):
        return event
    from gateway.store.events import envelope

    return envelope(event)


def assert_event_matches_schema(event: Any) -> dict[str, Any]:
    """Fail with every schema violation listed; returns the envelope for further checks."""
    document = as_envelope(event)
    errors = sorted(
        validator(str(document.get("type"))).iter_errors(document), key=lambda e: e.json_path
    )
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors)
    created = datetime.fromisoformat(document["created_at"].replace("Z", "+00:00"))
    assert created.tzinfo is not None, "created_at must carry a time zone"
    assert document["data"]["id"] == document["resource"]["id"], "data.id must be the resource id"
    return document


MONEY = {"value": "100.00", "currency": "CNY"}
STAMP = "2026-01-02T03:04:05.678Z"


def sample_data(resource: str, resource_id: str, status: str) -> dict[str, object]:
    """A full, realistic snapshot for the resources whose schemas are strict."""
    if resource == "link":
        status = "pending_verification" if status == "created" else status
        return {
            "id": resource_id,
            "status": status,
            "account": {"masked": "****6789", "currency": "CNY"},
            "wallet_account_reference": "w-1",
            "consent": {
                "scopes": ["debit"],
                "expires_at": None,
                "limits": {"per_transaction": MONEY, "daily": None, "monthly": None},
            },
            "created_at": STAMP,
            "activated_at": None,
            "ended_at": None,
            "status_reason": None,
        }
    if resource == "transfer":
        return {
            "id": resource_id,
            "link_id": new_id("lnk"),
            "direction": "debit",
            "capture_method": "automatic",
            "status": status,
            "amount": MONEY,
            "amount_captured": MONEY,
            "amount_refunded": {"value": "0.00", "currency": "CNY"},
            "fee": {"amount": {"value": "0.00", "currency": "CNY"}, "status": "none"},
            "partner_reference": None,
            "description": None,
            "hold_expires_at": None,
            "failure": None,
            "next_action": None,
            "settlement_date": None,
            "created_at": STAMP,
            "updated_at": STAMP,
            "completed_at": None,
        }
    return {
        "id": resource_id,
        "transfer_id": new_id("tr"),
        "status": status,
        "amount": MONEY,
        "reason": None,
        "failure": None,
        "created_at": STAMP,
        "updated_at": STAMP,
    }
