"""The core's ingestion endpoints: formats, validation, idempotency, access, crash recovery."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.core_banking.simulator import camt
from gateway.domain.ids import new_id
from gateway.store.tables import (
    AuditEntry,
    ReconciliationBreak,
    SettlementEntryRow,
    SettlementMessage,
    SettlementMessageChunk,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "iso20022"
XML = {"Content-Type": "application/xml"}


def push(client, partner, data: bytes, content_type: str = "application/xml") -> Any:  # type: ignore[no-untyped-def]
    return client.post(
        "/core/v1/iso20022", content=data, headers={**partner.auth, "Content-Type": content_type}
    )


def entry(
    n: int, account: str, *, amount: str = "10.00", reference: str | None = None
) -> camt.CamtEntry:
    return camt.CamtEntry(
        entry_id=n,
        account=account,
        amount=Decimal(amount),
        currency="CNY",
        credit_debit="CRDT",
        booking_date=date(2026, 1, 2),
        value_date=date(2026, 1, 2),
        core_reference=f"CB{uuid.uuid4().hex[:12].upper()}",
        reference=reference,
    )


def statement(account: str, entries: list[camt.CamtEntry], message_id: str | None = None) -> bytes:
    return b"".join(
        camt.iter_statement(
            entries,
            account=account,
            currency="CNY",
            day=date(2026, 1, 2),
            opening=Decimal(0),
            closing=Decimal(0),
            message_id=message_id or f"S-{uuid.uuid4().hex[:10]}",
            created=datetime.now(UTC),
        )
    )


@pytest.fixture
def core_partner(make_partner):  # type: ignore[no-untyped-def]
    return make_partner(kind="core")


@pytest.fixture
def settlement_partner(make_partner, core):  # type: ignore[no-untyped-def]
    account = core.open_account("Settlement", kind="settlement", balance="0.00", mobile=None)
    return make_partner(settlement_account=account, settlement_currency="CNY"), account


def _count(container, model, *where) -> int:  # type: ignore[no-untyped-def]
    with container.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@pytest.mark.parametrize(
    "sample",
    ["camt053.v2.minimal", "camt053.v3", "camt053.v4", "camt053.v8", "camt054.v2", "camt054.v4",
     "camt054.v8"],
)  # fmt: skip
def test_real_messages_of_every_version_are_accepted(client, make_partner, sample) -> None:  # type: ignore[no-untyped-def]
    core_partner = make_partner(kind="core")  # message ids are per sender
    response = push(client, core_partner, (FIXTURES / f"{sample}.xml").read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["format"].startswith(sample[:4] + "." + sample[4:7])
    # Foreign accounts: read, kept raw, not reconciled.
    assert body["outcome"] == {"outside_scope": body["entries"]}
    assert body["entries"] >= 1


def test_text_xml_is_accepted_too(client, core_partner) -> None:  # type: ignore[no-untyped-def]
    data = (FIXTURES / "camt054.v8.xml").read_bytes()
    assert push(client, core_partner, data, "text/xml; charset=utf-8").status_code == 200


def test_the_wrong_sample_is_rejected_naming_the_element(client, core_partner, container) -> None:  # type: ignore[no-untyped-def]
    response = push(client, core_partner, (FIXTURES / "camt053.v2.wrong.xml").read_bytes())
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_message"
    assert problem["errors"] == [
        {
            "path": "/Document/BkToCstmrStmt",
            "line": 3,
            "detail": "Missing child element(s). Expected is ( Stmt ).",
        }
    ]
    assert _count(container, SettlementMessage, SettlementMessage.sender_id == core_partner.id) == 0
    assert (
        _count(
            container,
            AuditEntry,
            AuditEntry.action == "settlement.message_rejected",
            AuditEntry.actor == f"partner:{core_partner.id}",
        )
        == 1
    )


def test_an_invalid_entry_anywhere_rejects_the_whole_message(  # type: ignore[no-untyped-def]
    client, core_partner, settlement_partner, container
) -> None:
    _partner, account = settlement_partner
    entries = [entry(n, account) for n in range(1, 3001)]
    data = statement(account, entries)
    bad = data.replace(
        f"<AcctSvcrRef>{entries[2500].core_reference}</AcctSvcrRef>".encode(),
        b"<AcctSvcrRef>" + b"X" * 40 + b"</AcctSvcrRef>",
    )
    assert bad != data
    response = push(client, core_partner, bad)
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["path"] == "/Document/BkToCstmrStmt/Stmt[1]/Ntry[2501]/AcctSvcrRef"
    assert "X" * 40 not in error["detail"]
    assert error["line"] == 2  # one-line entries after the declaration line
    # Nothing of it was applied (nor kept).
    assert _count(container, SettlementEntryRow, SettlementEntryRow.account == account) == 0
    assert _count(container, SettlementMessage, SettlementMessage.sender_id == core_partner.id) == 0
    assert _count(container, SettlementMessageChunk) == _count(
        container,
        SettlementMessageChunk,
        SettlementMessageChunk.message_pk.in_(select(SettlementMessage.id)),
    )
    # The corrected message under the same id goes through.
    fine = push(client, core_partner, data)
    assert fine.status_code == 200, fine.text
    assert fine.json()["breaks"] == {"unmatched_entry": 3000}


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "invalid_message"),
        (b"<Document", 400, "malformed_xml"),
        (b"not xml at all", 400, "malformed_xml"),
        (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>', 422,
         "unsupported_message"),
    ],
)  # fmt: skip
def test_bodies_that_are_not_camt_messages(client, core_partner, data, status, code) -> None:  # type: ignore[no-untyped-def]
    response = push(client, core_partner, data)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


def test_only_xml_is_accepted(client, core_partner) -> None:  # type: ignore[no-untyped-def]
    response = push(client, core_partner, b"{}", "application/json")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_only_the_core_may_push(client, make_partner) -> None:  # type: ignore[no-untyped-def]
    wallet = make_partner()
    data = (FIXTURES / "camt054.v8.xml").read_bytes()
    response = push(client, wallet, data)
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    events = client.post(
        "/core/v1/settlement-events", json={"batch_id": "b", "entries": []}, headers=wallet.auth
    )
    assert events.status_code == 403


def test_a_message_being_received_is_not_received_twice(client, core_partner, container) -> None:  # type: ignore[no-untyped-def]
    data = (FIXTURES / "camt054.v8.xml").read_bytes()
    now = container.clock.now()
    with container.db.transaction() as session:
        session.add(
            SettlementMessage(
                id=new_id("msg"),
                sender_id=core_partner.id,
                message_id="AAAASESS-FP-ACCR001",
                format="camt.054.001.08",
                kind="notification",
                status="receiving",
                lease_until=now + timedelta(minutes=5),
                size_bytes=0,
                stored_bytes=0,
                entry_count=0,
                applied_count=0,
                received_at=now,
            )
        )
    response = push(client, core_partner, data)
    assert response.status_code == 409
    assert response.json()["code"] == "message_in_flight"
    assert response.headers["Retry-After"] == "5"


def test_a_message_interrupted_while_applying_is_finished_once(  # type: ignore[no-untyped-def]
    client, core_partner, settlement_partner, container, clock, monkeypatch
) -> None:
    partner, account = settlement_partner
    data = statement(account, [entry(n, account) for n in range(1, 26)])
    service = container.settlement
    real_finish = service._finish
    monkeypatch.setattr(service, "_finish", _boom)  # the process dies before finishing
    assert push(client, core_partner, data).status_code == 500
    monkeypatch.setattr(service, "_finish", real_finish)
    with container.db.read() as session:
        (message,) = session.scalars(
            select(SettlementMessage).where(SettlementMessage.sender_id == core_partner.id)
        ).all()
    assert message.status == "applying" and message.applied_count == 25
    # While its lease runs, a resend is told to wait; afterwards the resend finishes the work.
    assert push(client, core_partner, data).status_code == 409
    clock.advance(seconds=container.settings.settlement_message_lease_seconds + 1)
    try:
        resumed = service.resume_stalled()
    finally:
        clock.advance(seconds=-(container.settings.settlement_message_lease_seconds + 1))
    assert resumed >= 1
    replay = push(client, core_partner, data)
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["breaks"] == {"unmatched_entry": 25}
    assert _count(container, SettlementEntryRow, SettlementEntryRow.account == account) == 25
    assert (
        _count(container, ReconciliationBreak, ReconciliationBreak.partner_id == partner.id) == 25
    )


def _boom(*_args: Any) -> Any:
    raise RuntimeError("the process died")


# --- JSON batches ------------------------------------------------------------------------------


def _batch_entry(account: str, **extra: Any) -> dict[str, Any]:
    body = {
        "account": account,
        "amount": {"value": "12.00", "currency": "CNY"},
        "credit_debit": "credit",
        "booking_date": "2026-01-02",
        "value_date": "2026-01-02",
        "core_reference": f"CB{uuid.uuid4().hex[:12].upper()}",
    }
    body.update(extra)
    return body


def test_a_json_batch_is_applied_once_by_batch_id(  # type: ignore[no-untyped-def]
    client, core_partner, settlement_partner, container
) -> None:
    _partner, account = settlement_partner
    body: dict[str, Any] = {"batch_id": f"B-{uuid.uuid4().hex}", "entries": [_batch_entry(account)]}
    first = client.post("/core/v1/settlement-events", json=body, headers=core_partner.auth)
    assert first.status_code == 200, first.text
    assert first.json()["format"] == "settlement-events"
    assert first.json()["breaks"] == {"unmatched_entry": 1}
    again = client.post("/core/v1/settlement-events", json=body, headers=core_partner.auth)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    body["entries"][0]["amount"]["value"] = "13.00"
    changed = client.post("/core/v1/settlement-events", json=body, headers=core_partner.auth)
    assert changed.status_code == 422
    assert changed.json()["code"] == "message_id_reused"
    assert _count(container, SettlementEntryRow, SettlementEntryRow.account == account) == 1


def test_a_json_batch_may_be_named_by_its_idempotency_key(  # type: ignore[no-untyped-def]
    client, core_partner, settlement_partner
) -> None:
    _partner, account = settlement_partner
    body = {"entries": [_batch_entry(account)]}
    unnamed = client.post("/core/v1/settlement-events", json=body, headers=core_partner.auth)
    assert unnamed.status_code == 400
    assert unnamed.json()["errors"][0]["pointer"] == "/batch_id"
    headers = {**core_partner.auth, "Idempotency-Key": str(uuid.uuid4())}
    first = client.post("/core/v1/settlement-events", json=body, headers=headers)
    assert first.status_code == 200, first.text
    again = client.post("/core/v1/settlement-events", json=body, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_json_batch_is_validated_before_anything_is_kept(  # type: ignore[no-untyped-def]
    client, core_partner, settlement_partner, container
) -> None:
    _partner, account = settlement_partner
    body: dict[str, Any] = {
        "batch_id": f"B-{uuid.uuid4().hex}",
        "entries": [
            _batch_entry(account),
            _batch_entry(account, amount={"value": "1.001", "currency": "CNY"}),
            _batch_entry(account, credit_debit="sideways"),
        ],
    }
    response = client.post("/core/v1/settlement-events", json=body, headers=core_partner.auth)
    assert response.status_code == 400
    assert {e["pointer"] for e in response.json()["errors"]} == {"/entries/2/credit_debit"}
    del body["entries"][2]
    response = client.post("/core/v1/settlement-events", json=body, headers=core_partner.auth)
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "pointer": "/entries/1/amount/value",
            "detail": "CNY amounts have exactly 2 decimal places (e.g. '100.00')",
        }
    ]
    assert _count(container, SettlementEntryRow, SettlementEntryRow.account == account) == 0
    assert _count(container, SettlementMessage, SettlementMessage.sender_id == core_partner.id) == 0


def test_the_raw_message_is_kept_for_audit(client, core_partner, make_partner) -> None:  # type: ignore[no-untyped-def]
    import gzip
    import hashlib

    data = (FIXTURES / "camt053.v8.xml").read_bytes()
    applied = push(client, core_partner, data)
    assert applied.status_code == 200
    operator = make_partner(kind="operator")
    listed = client.get(
        f"/admin/v1/reconciliation/messages?sender_id={core_partner.id}", headers=operator.auth
    )
    (message,) = listed.json()["data"]
    assert message["sha256"] == hashlib.sha256(data).hexdigest()
    assert message["size_bytes"] == len(data)
    raw = client.get(
        f"/admin/v1/reconciliation/messages/{message['id']}/raw", headers=operator.auth
    )
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/gzip"
    assert gzip.decompress(raw.content) == data
    assert raw.headers["X-Content-SHA256"] == message["sha256"]


def test_the_bulk_body_limit_applies_while_streaming(  # type: ignore[no-untyped-def]
    settings, clock, core_banking, core_partner, settlement_partner, container
) -> None:
    from gateway.app import create_app
    from gateway.container import build_container
    from tests.conftest import make_settings

    small = make_settings(
        settings.resolved_database_url, settings.data_dir, max_bulk_body_bytes=64 * 1024
    )
    gateway = build_container(small, clock=clock, core_banking=core_banking)
    try:
        with create_app(container=gateway).test_client() as limited:
            _partner, account = settlement_partner
            data = statement(account, [entry(n, account) for n in range(1, 400)])
            assert len(data) > 64 * 1024
            declared = push(limited, core_partner, data)
            assert declared.status_code == 413
            assert declared.json()["code"] == "payload_too_large"

            def parts():  # type: ignore[no-untyped-def]
                for start in range(0, len(data), 8192):
                    yield data[start : start + 8192]

            streamed = limited.post(
                "/core/v1/iso20022", content=parts(), headers={**core_partner.auth, **XML}
            )
            assert streamed.status_code == 413
            small_enough = statement(account, [entry(1, account)])
            assert push(limited, core_partner, small_enough).status_code == 200
    finally:
        gateway.close()
    assert _count(container, SettlementEntryRow, SettlementEntryRow.account == account) == 1
    assert _count(container, SettlementMessage, SettlementMessage.sender_id == core_partner.id) == 1


def test_a_json_batch_is_kept_as_received(  # type: ignore[no-untyped-def]
    client, core_partner, settlement_partner, make_partner
) -> None:
    import gzip
    import hashlib
    import json

    _partner, account = settlement_partner
    body: dict[str, Any] = {"batch_id": f"B-{uuid.uuid4().hex}", "entries": [_batch_entry(account)]}
    # Not how the gateway would write it: indented, keys unsorted, a trailing newline.
    data = json.dumps(body, indent=3).encode() + b"\n"
    headers = {**core_partner.auth, "Content-Type": "application/json"}
    first = client.post("/core/v1/settlement-events", content=data, headers=headers)
    assert first.status_code == 200, first.text
    operator = make_partner(kind="operator")
    listed = client.get(
        f"/admin/v1/reconciliation/messages?sender_id={core_partner.id}", headers=operator.auth
    )
    (message,) = listed.json()["data"]
    assert message["format"] == "settlement-events"
    assert message["sha256"] == hashlib.sha256(data).hexdigest()
    assert message["size_bytes"] == len(data)
    raw = client.get(
        f"/admin/v1/reconciliation/messages/{message['id']}/raw", headers=operator.auth
    )
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/gzip"
    assert raw.headers["Content-Disposition"].endswith('.json.gz"')
    assert gzip.decompress(raw.content) == data
    assert raw.headers["X-Content-SHA256"] == message["sha256"]

    # A resend spelled differently (compact, keys sorted) is the same batch.
    compact = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    again = client.post("/core/v1/settlement-events", content=compact, headers=headers)
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    same = client.post("/core/v1/settlement-events", content=data, headers=headers)
    assert same.headers["Idempotent-Replayed"] == "true"
    # Other content under the same batch id is not.
    body["entries"][0]["booking_date"] = "2026-01-03"
    changed = client.post("/core/v1/settlement-events", content=json.dumps(body), headers=headers)
    assert changed.status_code == 422
    assert changed.json()["code"] == "message_id_reused"
    # The stored batch is still the first one, byte for byte.
    raw = client.get(
        f"/admin/v1/reconciliation/messages/{message['id']}/raw", headers=operator.auth
    )
    assert gzip.decompress(raw.content) == data
