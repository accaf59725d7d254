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

SCHEMA_DIR: Path = resources.contracts_dir() / "events"


@functools.cache
def registry() -> Registry:
    entries = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        entries.append((path.name, Resource.from_contents(json.loads(path.read_text()))))
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
