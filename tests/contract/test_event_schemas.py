"""contracts/events/: valid JSON Schemas, one per event type, and they accept real envelopes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from jsonschema import Draft202012Validator

from gateway.domain.ids import new_id
from gateway.domain.links import LinkStatus
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
REQUIRED_TYPES = (
    {"link.created"}
    | {f"link.{s}" for s in LinkStatus if s is not LinkStatus.PENDING}
    | {f"transfer.{s}" for s in TransferStatus if s is not TransferStatus.CREATED}
    | {f"refund.{s}" for s in RefundStatus}
    | {"payout.created", "payout.processing", "payout.succeeded", "payout.failed",
       "payout.unknown", "settlement.completed", "webhook_endpoint.failing"}
)  # fmt: skip


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
    assert event_types() >= REQUIRED_TYPES
    assert "envelope" not in event_types()


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
