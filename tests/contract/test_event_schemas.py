"""contracts/events/: valid JSON Schemas, one per event type, and they accept real envelopes."""

from __future__ import annotations

import ast
import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import gateway
from gateway.domain.ids import new_id
from gateway.domain.links import LinkStatus
from gateway.domain.payouts import PayoutStatus
from gateway.domain.transfers import RefundStatus, TransferStatus
from gateway.store.events import envelope, event_types
from gateway.store.tables import Event
from tests.event_schemas import SCHEMA_DIR, assert_event_matches_schema, sample_data

PREFIX = {
    "link": "lnk",
    "transfer": "tr",
    "refund": "rf",
    "payout": "po",
    "settlement": "stl",
    "webhook_endpoint": "whe",
}

# A resource whose events are `<resource>.<status>` (`record_event(type=f"link.{target.value}")`)
# can emit every status of its enum, minus the states it is never announced in:
STATUS_EVENTS: dict[str, type[StrEnum]] = {
    "link": LinkStatus,
    "transfer": TransferStatus,
    "refund": RefundStatus,
    "payout": PayoutStatus,
}
NEVER_ANNOUNCED: dict[str, set[StrEnum]] = {
    # Announced as `link.created` (a literal type in LinkService.create).
    "link": {LinkStatus.PENDING},
    # Inserted already moved on: the first event is `processing` or `requires_action`.
    "transfer": {TransferStatus.CREATED},
}
# Types the services emit as literals, with no status enum behind them.
FIXED_TYPES = {"settlement.completed", "webhook_endpoint.failing", "webhook_endpoint.recovered"}


def _emitted_types() -> set[str]:
    """Every type the gateway can send, derived from the status enums: a new status is in."""
    types = set(FIXED_TYPES) | {"link.created"}
    for resource, statuses in STATUS_EVENTS.items():
        skipped: set[StrEnum] = NEVER_ANNOUNCED.get(resource, set())
        types |= {f"{resource}.{s.value}" for s in statuses if s not in skipped}
    return types


REQUIRED_TYPES = _emitted_types()
DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def _sample(event_type: str) -> Event:
    resource = event_type.split(".")[0]
    resource_id = new_id(PREFIX[resource])
    data: dict[str, object] = {"id": resource_id, "status": event_type.split(".")[1]}
    if resource in ("link", "transfer", "refund"):
        data = sample_data(resource, resource_id, event_type.split(".")[1])
    if resource == "webhook_endpoint":
        status = "failing" if event_type.endswith("failing") else "healthy"
        data = {
            "id": resource_id,
            "url": "https://hooks.partner.example/in",
            "description": None,
            "event_types": ["*"],
            "enabled": True,
            "status": status,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-02T00:00:00Z",
            "secret_rotated_at": None,
            "previous_secret_expires_at": None,
            "failing_since": "2026-01-02T00:00:00Z" if status == "failing" else None,
            "consecutive_failures": 7 if status == "failing" else 0,
            "last_success_at": None,
            "last_failure_at": "2026-01-02T00:00:00Z",
        }
    if resource == "payout":
        data = payout_snapshot(resource_id, event_type.split(".")[1])
    if resource == "settlement":
        money = {"value": "0.00", "currency": "CNY"}
        data = {
            "id": resource_id,
            "partner_id": new_id("ptn"),
            "status": "completed",
            "settlement_date": "2026-01-02",
            "currency": "CNY",
            "debits": {"value": "150.00", "currency": "CNY"},
            "credits": money,
            "refunds": money,
            "fees": {"value": "1.50", "currency": "CNY"},
            "reversals": money,
            "net": {"value": "148.50", "currency": "CNY"},
            "entry_count": 3,
            "completion": "statement",
            "completed_at": "2026-01-03T00:05:00Z",
            "created_at": "2026-01-02T09:00:00Z",
            "updated_at": "2026-01-03T00:05:00Z",
        }
    return Event(
        id=new_id("evt"),
        partner_id=None,
        type=event_type,
        resource_type=resource,
        resource_id=resource_id,
        sequence=3,
        data=data,
        created_at=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    )


def payout_snapshot(payout_id: str, status: str) -> dict[str, object]:
    final = status in ("succeeded", "failed")
    return {
        "id": payout_id,
        "provider": "gsma_mm",
        "status": status,
        "amount": {"value": "100.00", "currency": "KES"},
        "source_account": {"masked": "****0001"},
        "recipient": {"type": "msisdn", "masked": "****5601"},
        "description": "School fees",
        "partner_reference": None,
        "provider_reference": "MM1234" if status == "succeeded" else None,
        "failure": {"code": "provider_declined", "message": "The provider declined the payment"}
        if status == "failed"
        else None,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:05Z",
        "completed_at": "2026-01-01T00:00:05Z" if final else None,
        "next_action": None,
    }


@pytest.mark.parametrize(
    ("status", "mutate", "message"),
    [
        ("succeeded", lambda d: d.update(completed_at=None), "is not of type 'string'"),
        ("failed", lambda d: d.update(failure=None), "is not of type 'object'"),
        ("processing", lambda d: d.update(status="succeeded"), "was expected"),
        ("processing", lambda d: d.update(account_number="6222020000000001"), "Additional"),
        ("created", lambda d: d["source_account"].update(masked="6222020000000001"), "match"),
        ("created", lambda d: d["amount"].update(value=100), "is not of type 'string'"),
    ],
)
def test_payout_schemas_pin_the_snapshot(status: str, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    document = envelope(_sample(f"payout.{status}"))
    assert_event_matches_schema(document)
    mutate(document["data"])
    with pytest.raises(AssertionError, match=message):
        assert_event_matches_schema(document)


def test_every_file_is_a_valid_json_schema() -> None:
    files = sorted(SCHEMA_DIR.rglob("*.json"))
    assert files
    for path in files:
        Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_the_catalogue_covers_every_event_type_the_gateway_sends() -> None:
    missing = REQUIRED_TYPES - event_types()
    assert not missing, f"statuses the gateway announces with no schema in {SCHEMA_DIR}: {missing}"
    stale = event_types() - REQUIRED_TYPES
    assert not stale, f"schemas for types the gateway never sends (a partner would wait): {stale}"
    assert "envelope" not in event_types()


def _record_event_types() -> tuple[set[str], set[str], list[str]]:
    """What the `type=` of every `record_event(...)` call under gateway/ can be.

    Returns the literal types, the resources of `f"<resource>.{…}"` types, and the calls whose
    type this test cannot read. A type passed through a helper's parameter (the webhook
    dispatcher's `_notify(session, endpoint, "webhook_endpoint.failing", now)`) is resolved by
    reading the literal arguments of that helper's calls.
    """
    literals: set[str] = set()
    resources: set[str] = set()
    unreadable: list[str] = []
    trees = {
        path: ast.parse(path.read_text())
        for path in Path(gateway.__file__).resolve().parent.rglob("*.py")
    }

    def callee(call: ast.Call) -> str | None:
        func = call.func
        return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)

    def literal_arguments(function: str, position: int, name: str) -> list[ast.expr]:
        found: list[ast.expr] = []
        for tree in trees.values():
            for call in ast.walk(tree):
                if isinstance(call, ast.Call) and callee(call) == function:
                    found += [k.value for k in call.keywords if k.arg == name]
                    offset = 1 if isinstance(call.func, ast.Attribute) else 0  # self.
                    if len(call.args) > position - offset >= 0:
                        found.append(call.args[position - offset])
        return found

    for path, tree in trees.items():
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            parameters = [a.arg for a in function.args.args]
            for call in ast.walk(function):
                if not (isinstance(call, ast.Call) and callee(call) == "record_event"):
                    continue
                [value] = [k.value for k in call.keywords if k.arg == "type"]
                values: list[ast.expr] = [value]
                if isinstance(value, ast.Name) and value.id in parameters:
                    values = literal_arguments(function.name, parameters.index(value.id), value.id)
                    if not values:
                        unreadable.append(f"{path.name}:{call.lineno}")
                for expr in values:
                    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
                        literals.add(expr.value)
                    elif (
                        isinstance(expr, ast.JoinedStr)
                        and isinstance(expr.values[0], ast.Constant)
                        and str(expr.values[0].value).endswith(".")
                    ):
                        resources.add(str(expr.values[0].value).removesuffix("."))
                    else:
                        unreadable.append(f"{path.name}:{call.lineno}")
    return literals, resources, unreadable


def test_every_record_event_call_emits_a_catalogued_type() -> None:
    """A new `record_event` call with a new literal type, or an f-string type over a resource
    without a status enum here, fails until the catalogue (and this test) know it."""
    literals, resources, unreadable = _record_event_types()
    assert not unreadable, f"record_event calls whose type this test cannot check: {unreadable}"
    assert literals, "no record_event call found: the scan is broken"
    assert literals <= REQUIRED_TYPES, literals - REQUIRED_TYPES
    assert literals >= FIXED_TYPES, f"no longer emitted: {FIXED_TYPES - literals}"
    assert resources <= set(STATUS_EVENTS), (
        f"f-string event types over {resources - set(STATUS_EVENTS)}: add the status enum"
    )
    assert resources == set(STATUS_EVENTS)


def _documented_types() -> list[str]:
    text = DOCS.read_text()
    section = text.split("\n### Event types\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", section, flags=re.MULTILINE)


def test_the_partner_guide_lists_exactly_the_catalogue() -> None:
    documented = _documented_types()
    assert len(documented) == len(set(documented)), "a type is listed twice"
    assert set(documented) == event_types(), (
        f"docs/webhooks.md 'Event types': missing {sorted(event_types() - set(documented))}, "
        f"not in the catalogue {sorted(set(documented) - event_types())}"
    )


def test_the_partner_guide_names_no_event_type_outside_the_catalogue() -> None:
    """Anywhere in docs/webhooks.md (code spans, JSON, filters), an event type is a real one."""
    text = DOCS.read_text()
    spans = re.findall(r"`([^`\n]+)`", text) + re.findall(r'"([^"\n]+)"', text)
    pattern = re.compile(rf"(?<![\w./])((?:{'|'.join(PREFIX)})\.(?:[a-z_]+|\*))(?![\w./])")
    named = {match for span in spans for match in pattern.findall(span)}
    wildcards = {f"{resource}.*" for resource in PREFIX}
    assert named - wildcards, "the scan found nothing: it is broken"
    assert named - wildcards <= event_types(), sorted(named - wildcards - event_types())


@pytest.mark.parametrize("event_type", sorted(event_types()))
def test_a_sample_of_each_type_validates(event_type: str) -> None:
    document = assert_event_matches_schema(_sample(event_type))
    assert document["type"] == event_type
    # The wire bytes (webhook body) validate too.
    assert_event_matches_schema(json.dumps(document))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.update(extra=1), "Additional properties"),
        (lambda e: e.pop("sequence"), "'sequence' is a required property"),
        (lambda e: e.update(sequence=0), "less than the minimum"),
        (lambda e: e.update(id="tr_" + e["id"][4:]), "does not match"),
        (lambda e: e["resource"].update(type="refund"), "was expected"),
        (lambda e: e["data"].pop("status"), "'status' is a required property"),
        (lambda e: e["data"].update(id=new_id("rf")), "does not match"),
    ],
)
def test_schemas_reject_broken_envelopes(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    document = envelope(_sample("transfer.succeeded"))
    mutate(document)
    with pytest.raises(AssertionError, match=message):
        assert_event_matches_schema(document)


def test_data_id_must_be_the_resource_id() -> None:
    document = envelope(_sample("transfer.succeeded"))
    other = new_id("tr")
    document["data"]["id"] = other
    with pytest.raises(AssertionError, match=r"data\.id must be the resource id"):
        assert_event_matches_schema(document)


def test_an_unknown_type_has_no_schema() -> None:
    document = envelope(_sample("transfer.succeeded"))
    document["type"] = "transfer.teleported"
    with pytest.raises(AssertionError, match="no schema for event type"):
        assert_event_matches_schema(document)
