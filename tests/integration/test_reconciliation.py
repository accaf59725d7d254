"""Operators' reconciliation: breaks and their resolution, the date report, closing a date, the
`wallet-gateway reconcile` commands, and partners' view of their settlements."""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from gateway.cli import main
from gateway.store.tables import AuditEntry, Event
from tests.event_schemas import assert_event_matches_schema


@pytest.fixture
def day() -> date:
    """A settlement date no other test uses (reports cover every partner of a date)."""
    return date(2031, 1, 1) + timedelta(days=random.randrange(3000))


@pytest.fixture
def world(make_partner, core) -> Any:  # type: ignore[no-untyped-def]
    account = core.open_account("Settlement", kind="settlement", balance="0.00", mobile=None)

    class World:
        wallet = make_partner(settlement_account=account, settlement_currency="CNY")
        core_partner = make_partner(kind="core")
        operator = make_partner(kind="operator")
        settlement_account = account

    return World()


def push_entries(client, world, on: date, *amounts: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    body = {
        "batch_id": f"B-{uuid.uuid4().hex}",
        "entries": [
            {
                "account": world.settlement_account,
                "amount": {"value": amount, "currency": "CNY"},
                "credit_debit": "credit",
                "booking_date": on.isoformat(),
                "core_reference": f"CB{uuid.uuid4().hex[:12].upper()}",
                "reference": f"WIRE-{n}",
            }
            for n, amount in enumerate(amounts)
        ],
    }
    response = client.post("/core/v1/settlement-events", json=body, headers=world.core_partner.auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


def breaks(client, world, **query: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    params = "&".join(f"{k}={v}" for k, v in {"partner_id": world.wallet.id, **query}.items())
    response = client.get(f"/admin/v1/reconciliation/breaks?{params}", headers=world.operator.auth)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_an_operator_resolves_a_break_with_a_reason(client, container, world, day) -> None:  # type: ignore[no-untyped-def]
    push_entries(client, world, day, "99.00")
    (found,) = breaks(client, world, status="open")
    assert found["type"] == "unmatched_entry"
    assert found["reference"] == "WIRE-0"
    assert found["settlement_date"] == day.isoformat()

    path = f"/admin/v1/reconciliation/breaks/{found['id']}/resolve"
    reason = "partner funding wire, confirmed by back office"
    resolved = client.post(path, json={"reason": reason}, headers=world.operator.auth)
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["resolution"] == reason
    assert resolved.json()["resolved_by"] == f"operator:{world.operator.id}"
    assert breaks(client, world, status="open") == []
    assert [b["id"] for b in breaks(client, world, status="resolved")] == [found["id"]]
    with container.db.read() as session:
        (audit,) = session.scalars(
            select(AuditEntry).where(AuditEntry.target_id == found["id"])
        ).all()
    assert audit.action == "reconciliation.break_resolved"
    assert audit.actor == f"operator:{world.operator.id}"
    assert audit.details["reason"] == reason

    again = client.post(path, json={"reason": reason}, headers=world.operator.auth)
    assert again.status_code == 409
    assert again.json()["code"] == "break_resolved"
    unknown = client.post(
        "/admin/v1/reconciliation/breaks/brk_01m84qy0vqqs38h4prbpte9e4b/resolve",
        json={"reason": reason},
        headers=world.operator.auth,
    )
    assert unknown.status_code == 404
    assert client.post(path, json={}, headers=world.operator.auth).status_code == 400
    assert client.post(path, json={"reason": reason}, headers=world.wallet.auth).status_code == 403


def test_breaks_can_be_filtered_and_paged(client, world, day) -> None:  # type: ignore[no-untyped-def]
    push_entries(client, world, day, "1.00", "2.00", "3.00")
    push_entries(client, world, day + timedelta(days=1), "4.00")
    assert len(breaks(client, world, type="unmatched_entry")) == 4
    assert len(breaks(client, world, settlement_date=day.isoformat())) == 3
    assert breaks(client, world, type="duplicate") == []
    first = client.get(
        f"/admin/v1/reconciliation/breaks?partner_id={world.wallet.id}&limit=3",
        headers=world.operator.auth,
    ).json()
    assert first["has_more"] is True
    rest = client.get(
        f"/admin/v1/reconciliation/breaks?partner_id={world.wallet.id}&limit=3"
        f"&cursor={first['next_cursor']}",
        headers=world.operator.auth,
    ).json()
    assert len(first["data"]) + len(rest["data"]) == 4
    single = client.get(
        f"/admin/v1/reconciliation/breaks/{rest['data'][0]['id']}", headers=world.operator.auth
    )
    assert single.json() == rest["data"][0]


def test_the_date_report(client, world, day) -> None:  # type: ignore[no-untyped-def]
    pushed = push_entries(client, world, day, "10.00", "20.00")
    report = client.get(f"/admin/v1/reconciliation/{day.isoformat()}", headers=world.operator.auth)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["date"] == day.isoformat()
    assert body["breaks"]["open"] == {"unmatched_entry": 2}
    assert body["entries"] == {"total": 2, "by_role": {"unmatched": 2}}
    # Unexplained money is not the partner's position: no settlement for the date yet.
    assert body["settlements"] == []
    assert pushed["breaks"] == {"unmatched_entry": 2}
    bad = client.get("/admin/v1/reconciliation/2031-02-30", headers=world.operator.auth)
    assert bad.status_code == 400


def test_an_operator_closes_a_date(client, container, world, day) -> None:  # type: ignore[no-untyped-def]
    closing = client.post(
        f"/admin/v1/reconciliation/{day.isoformat()}/close",
        json={"reason": "core statement unavailable", "partner_id": world.wallet.id},
        headers=world.operator.auth,
    )
    assert closing.status_code == 200, closing.text
    (settlement,) = closing.json()["data"]
    assert settlement["status"] == "completed"
    assert settlement["completion"] == "operator"
    assert settlement["net"] == {"value": "0.00", "currency": "CNY"}
    with container.db.read() as session:
        (event,) = session.scalars(select(Event).where(Event.resource_id == settlement["id"])).all()
    assert assert_event_matches_schema(event)["data"] == settlement

    mine = client.get(f"/v1/settlements/{settlement['id']}", headers=world.wallet.auth)
    assert mine.json() == settlement
    listed = client.get(
        f"/v1/settlements?status=completed&from={day.isoformat()}&to={day.isoformat()}",
        headers=world.wallet.auth,
    )
    assert listed.json()["data"] == [settlement]
    other = client.get(f"/v1/settlements/{settlement['id']}", headers=world.core_partner.auth)
    assert other.status_code == 403  # the core has no settlements:read

    again = client.post(
        f"/admin/v1/reconciliation/{day.isoformat()}/close",
        json={"reason": "again", "partner_id": world.wallet.id},
        headers=world.operator.auth,
    )
    assert again.json()["data"] == []
    nobody = client.post(
        f"/admin/v1/reconciliation/{day.isoformat()}/close",
        json={"reason": "core statement unavailable", "partner_id": world.operator.id},
        headers=world.operator.auth,
    )
    assert nobody.status_code == 422
    assert nobody.json()["code"] == "settlement_account_missing"
    admin = client.get(
        f"/admin/v1/settlements?partner_id={world.wallet.id}", headers=world.operator.auth
    )
    assert admin.json()["data"] == [settlement]


def test_a_partner_sees_only_its_own_settlements(client, make_partner, world, day) -> None:  # type: ignore[no-untyped-def]
    client.post(
        f"/admin/v1/reconciliation/{day.isoformat()}/close",
        json={"reason": "test", "partner_id": world.wallet.id},
        headers=world.operator.auth,
    )
    stranger = make_partner()
    assert client.get("/v1/settlements", headers=stranger.auth).json()["data"] == []
    (mine,) = client.get("/v1/settlements", headers=world.wallet.auth).json()["data"]
    response = client.get(f"/v1/settlements/{mine['id']}", headers=stranger.auth)
    assert response.status_code == 404
    assert response.json()["code"] == "settlement_not_found"


# --- the command line --------------------------------------------------------------------------


@pytest.fixture
def cli_env(settings: Any, container: Any) -> dict[str, str]:
    return {
        "GATEWAY_DATABASE_URL": settings.resolved_database_url,
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_ENVIRONMENT": "test",
    }


def test_reconcile_report_as_csv_and_json(client, world, day, cli_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    push_entries(client, world, day, *[f"{n}.00" for n in range(1, 6)])
    runner = CliRunner()
    result = runner.invoke(
        main, ["reconcile", "report", "--date", day.isoformat(), "--format", "csv"], env=cli_env
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["amount"] for row in rows] == ["1.00", "2.00", "3.00", "4.00", "5.00"]
    assert {row["break_type"] for row in rows} == {"unmatched_entry"}
    assert {row["account"] for row in rows} == {"****" + world.settlement_account[-4:]}
    assert world.settlement_account not in result.stdout

    target = tmp_path / "report.json"
    result = runner.invoke(
        main,
        [
            "reconcile",
            "report",
            "--date",
            day.isoformat(),
            "--format",
            "json",
            "--output",
            str(target),
        ],
        env=cli_env,
    )
    assert result.exit_code == 0, result.output
    document = json.loads(target.read_text())
    assert document["date"] == day.isoformat()
    assert document["breaks"]["open"] == {"unmatched_entry": 5}
    assert [row["reference"] for row in document["rows"]] == [f"WIRE-{n}" for n in range(5)]

    empty = runner.invoke(
        main, ["reconcile", "report", "--date", "2030-01-01", "--format", "json"], env=cli_env
    )
    assert empty.exit_code == 0
    assert json.loads(empty.stdout)["rows"] == []
    bad = runner.invoke(main, ["reconcile", "report", "--date", "yesterday"], env=cli_env)
    assert bad.exit_code == 2


def test_reconcile_close_and_resolve_from_the_command_line(client, world, day, cli_env) -> None:  # type: ignore[no-untyped-def]
    push_entries(client, world, day, "7.00")
    (found,) = breaks(client, world)
    runner = CliRunner()
    resolved = runner.invoke(
        main, ["reconcile", "resolve", found["id"], "--reason", "known wire"], env=cli_env
    )
    assert resolved.exit_code == 0, resolved.output
    assert breaks(client, world)[0]["status"] == "resolved"
    again = runner.invoke(
        main, ["reconcile", "resolve", found["id"], "--reason", "known wire"], env=cli_env
    )
    assert again.exit_code == 1
    assert "already resolved" in again.output

    closed = runner.invoke(
        main,
        ["reconcile", "close", "--date", day.isoformat(), "--partner", world.wallet.id,
         "--reason", "no statement today"],
        env=cli_env,
    )  # fmt: skip
    assert closed.exit_code == 0, closed.output
    assert "completed 1 settlement(s)" in closed.output
    (settlement,) = client.get("/v1/settlements", headers=world.wallet.auth).json()["data"]
    assert settlement["status"] == "completed"


def test_the_reconciliation_workers_are_registered(container, client, world, day) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client import REGISTRY

    from gateway.workers.jobs import default_jobs

    names = {job.name for job in default_jobs(container)}
    assert {"reconciliation-missing-entries", "settlement-resume"} <= names
    push_entries(client, world, day, "3.00")
    missing = container.workers["reconciliation-missing-entries"]()
    assert missing.run() >= 0
    assert container.workers["settlement-resume"]().run() == 0
    gauge = REGISTRY.get_sample_value(
        "gateway_reconciliation_breaks_open", {"kind": "unmatched_entry"}
    )
    assert gauge is not None and gauge >= 1
