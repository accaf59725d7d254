"""Account links through the HTTP API: life cycle, OTP, consent, expiry, isolation, privacy."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.store.tables import Event
from tests import flows
from tests.event_schemas import assert_event_matches_schema
from tests.flows import create_active_link, link_body, post_json

MOBILE = "+8613800138000"


def _post(client, path: str, partner, body: dict[str, Any] | None = None, key: str | None = None):  # type: ignore[no-untyped-def]
    return post_json(client, path, partner, body, key)


def last_code(container, mobile: str = MOBILE) -> str:  # type: ignore[no-untyped-def]
    return flows.last_code(container, mobile)


@pytest.fixture
def wallet(make_partner):  # type: ignore[no-untyped-def]
    return make_partner()


def test_life_cycle_create_verify_use_revoke(client, container, core, wallet) -> None:  # type: ignore[no-untyped-def]
    account = core.open_account(mobile=MOBILE)
    created = _post(client, "/v1/links", wallet, link_body(account))
    assert created.status_code == 201, created.text
    link = created.json()
    assert link["status"] == "pending_verification"
    assert link["account"] == {"masked": "****" + account[-4:], "currency": "CNY"}
    assert link["verification"]["sent_to"] == "****8000"
    assert link["verification"]["attempts_remaining"] == 5
    assert account not in created.text

    verified = _post(
        client, f"/v1/links/{link['id']}/verify", wallet, {"code": last_code(container)}
    )
    assert verified.status_code == 200
    assert verified.json()["status"] == "active"
    assert "verification" not in verified.json()

    balance = client.get(f"/v1/links/{link['id']}/balance", headers=wallet.auth)
    assert balance.status_code == 200
    assert balance.json()["available"] == {"value": "10000.00", "currency": "CNY"}
    for amount in ("1.00", "2.00", "3.00", "4.00"):
        core.deposit(account, amount)
    first = client.get(f"/v1/links/{link['id']}/transactions?limit=2", headers=wallet.auth).json()
    assert len(first["data"]) == 2 and first["has_more"]
    rest = client.get(
        f"/v1/links/{link['id']}/transactions?limit=10&cursor={first['next_cursor']}",
        headers=wallet.auth,
    ).json()
    seen = first["data"] + rest["data"]
    assert not rest["has_more"]
    assert {"1.00", "2.00", "3.00", "4.00"} <= {e["amount"]["value"] for e in seen}
    assert len({e["id"] for e in seen}) == len(seen)

    revoked = client.delete(f"/v1/links/{link['id']}", headers=wallet.auth)
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    after = client.get(f"/v1/links/{link['id']}/balance", headers=wallet.auth)
    assert after.status_code == 409
    assert after.json()["code"] == "link_not_active"

    with container.db.read() as session:
        events = session.scalars(
            select(Event).where(Event.resource_id == link["id"]).order_by(Event.sequence)
        ).all()
        assert [(e.type, e.sequence) for e in events] == [
            ("link.created", 1),
            ("link.active", 2),
            ("link.revoked", 3),
        ]
        assert events[-1].data["status"] == "revoked"
        for event in events:
            assert_event_matches_schema(event)


def test_five_wrong_codes_lock_the_link(client, container, core, wallet) -> None:  # type: ignore[no-untyped-def]
    account = core.open_account(mobile=MOBILE)
    link = _post(client, "/v1/links", wallet, link_body(account)).json()
    right = last_code(container)
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    remaining = []
    for _ in range(4):
        response = _post(client, f"/v1/links/{link['id']}/verify", wallet, {"code": wrong})
        assert response.status_code == 422
        assert response.json()["code"] == "otp_invalid"
        remaining.append(response.json()["attempts_remaining"])
    assert remaining == [4, 3, 2, 1]
    fifth = _post(client, f"/v1/links/{link['id']}/verify", wallet, {"code": wrong})
    assert fifth.json()["code"] == "otp_locked"
    assert client.get(f"/v1/links/{link['id']}", headers=wallet.auth).json()["status"] == "locked"
    late = _post(client, f"/v1/links/{link['id']}/verify", wallet, {"code": right})
    assert late.status_code == 409  # even the right code is too late now


def test_expired_code_and_resend(client, container, core, wallet, clock) -> None:  # type: ignore[no-untyped-def]
    account = core.open_account(mobile=MOBILE)
    link = _post(client, "/v1/links", wallet, link_body(account)).json()
    old = last_code(container)
    clock.advance(seconds=301)
    try:
        expired = _post(client, f"/v1/links/{link['id']}/verify", wallet, {"code": old})
    finally:
        clock.advance(seconds=-301)
    assert expired.json()["code"] == "otp_expired"
    resent = _post(client, f"/v1/links/{link['id']}/otp", wallet)
    assert resent.status_code == 200
    new = last_code(container)
    if new != old:  # a one-in-a-million collision would make this check meaningless
        assert (
            _post(client, f"/v1/links/{link['id']}/verify", wallet, {"code": old}).status_code
            == 422
        )
    assert _post(client, f"/v1/links/{link['id']}/verify", wallet, {"code": new}).status_code == 200


def test_resends_are_bounded(client, core, wallet) -> None:  # type: ignore[no-untyped-def]
    link = _post(client, "/v1/links", wallet, link_body(core.open_account(mobile=MOBILE))).json()
    statuses = [_post(client, f"/v1/links/{link['id']}/otp", wallet).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


@pytest.mark.parametrize(
    ("account_kwargs", "body_overrides", "code"),
    [
        ({}, {"holder_name": "LI Na"}, "name_mismatch"),
        ({"status": "DORMANT"}, {}, "account_inactive"),
        ({"currency": "USD"}, {}, "currency_mismatch"),
        ({"mobile": None}, {}, "no_registered_mobile"),
        ({"debit_allowed": False}, {}, "account_not_eligible"),
    ],
)
def test_core_checks_reject_with_clear_codes(
    client, core, wallet, account_kwargs, body_overrides, code
) -> None:  # type: ignore[no-untyped-def]
    account = core.open_account(**account_kwargs)
    response = _post(client, "/v1/links", wallet, link_body(account, **body_overrides))
    assert response.status_code == 422
    assert response.json()["code"] == code
    assert account not in response.text


def test_unknown_account(client, wallet) -> None:  # type: ignore[no-untyped-def]
    response = _post(client, "/v1/links", wallet, link_body("9999000011112222"))
    assert response.json()["code"] == "account_not_found"


def test_tolerant_name_matching(client, core, wallet) -> None:  # type: ignore[no-untyped-def]
    account = core.open_account(holder="WANG Wei")
    response = _post(client, "/v1/links", wallet, link_body(account, holder_name="  wei   WANG "))
    assert response.status_code == 201


def test_relinking_a_live_account_is_a_conflict(client, container, core, wallet) -> None:  # type: ignore[no-untyped-def]
    account = core.open_account(mobile=MOBILE)
    first = _post(client, "/v1/links", wallet, link_body(account)).json()
    again = _post(client, "/v1/links", wallet, link_body(account.replace("", " ").strip()))
    assert again.status_code == 409
    assert again.json()["code"] == "link_exists"
    assert again.json()["link_id"] == first["id"]
    client.delete(f"/v1/links/{first['id']}", headers=wallet.auth)
    assert _post(client, "/v1/links", wallet, link_body(account)).status_code == 201


def test_same_idempotency_key_replays_and_another_payload_is_refused(client, core, wallet) -> None:  # type: ignore[no-untyped-def]
    account = core.open_account()
    key = str(uuid.uuid4())
    first = _post(client, "/v1/links", wallet, link_body(account), key=key)
    replay = _post(client, "/v1/links", wallet, link_body(account), key=key)
    assert replay.status_code == 201
    assert replay.json()["id"] == first.json()["id"]
    assert replay.headers["idempotent-replayed"] == "true"
    other = _post(client, "/v1/links", wallet, link_body(account, holder_name="Wei WANG"), key=key)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


def test_consent_scope_is_enforced(client, container, core, wallet) -> None:  # type: ignore[no-untyped-def]
    account = core.open_account(mobile=MOBILE)
    body = link_body(account)
    body["consent"]["scopes"] = ["debit"]
    link = _post(client, "/v1/links", wallet, body).json()
    _post(client, f"/v1/links/{link['id']}/verify", wallet, {"code": last_code(container)})
    for path in ("balance", "transactions"):
        response = client.get(f"/v1/links/{link['id']}/{path}", headers=wallet.auth)
        assert response.status_code == 403
        assert response.json()["code"] == "consent_scope_missing"


@contextmanager
def _a_lapsed_link(  # type: ignore[no-untyped-def]
    client, container, core, wallet, clock
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """A link whose consent lapsed an hour ago (the clock moved on; the sweeper has not run):
    yields the link and the body that created it; the clock is put back afterwards."""
    body = link_body(core.open_account(mobile=MOBILE))
    body["consent"]["expires_at"] = (
        datetime.now(UTC) + clock.offset + timedelta(hours=1)
    ).isoformat()
    link = _post(client, "/v1/links", wallet, body).json()
    _post(client, f"/v1/links/{link['id']}/verify", wallet, {"code": last_code(container)})
    clock.advance(hours=2)
    wallet.renew()
    try:
        yield link, body
    finally:
        clock.advance(hours=-2)
        wallet.renew()


def _event_types(container, resource_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    with container.db.read() as session:
        return list(session.scalars(select(Event.type).where(Event.resource_id == resource_id)))


def test_consent_expiry(client, container, core, wallet, clock) -> None:  # type: ignore[no-untyped-def]
    with _a_lapsed_link(client, container, core, wallet, clock) as (link, _body):
        assert (
            client.get(f"/v1/links/{link['id']}", headers=wallet.auth).json()["status"] == "expired"
        )
        refused = client.get(f"/v1/links/{link['id']}/balance", headers=wallet.auth)
        assert refused.json()["code"] == "link_not_active"
        assert container.links.expire_due() >= 1
    assert "link.expired" in _event_types(container, link["id"])


def test_relinking_after_consent_lapsed_before_the_sweeper_ran(
    client, container, core, wallet, clock
) -> None:  # type: ignore[no-untyped-def]
    with _a_lapsed_link(client, container, core, wallet, clock) as (old, body):
        body["consent"].pop("expires_at")
        again = _post(client, "/v1/links", wallet, body)
        assert again.status_code == 201, again.text
        assert again.json()["id"] != old["id"]
        # The lapsed link was ended in the same transaction, with its event.
        assert "link.expired" in _event_types(container, old["id"])


def test_consent_limits_must_be_in_the_link_currency(client, core, wallet) -> None:  # type: ignore[no-untyped-def]
    body = link_body(core.open_account())
    body["consent"]["limits"] = {
        "daily": {"value": "10.00", "currency": "USD"},
        "monthly": {"value": "10", "currency": "CNY"},
    }
    response = client.post(
        "/v1/links", json=body, headers={**wallet.auth, "Idempotency-Key": "k-limits"}
    )
    assert response.status_code == 400
    pointers = {e["pointer"] for e in response.json()["errors"]}
    assert pointers == {"/consent/limits/daily/currency", "/consent/limits/monthly/value"}


def test_other_partners_see_nothing(client, container, core, wallet, make_partner) -> None:  # type: ignore[no-untyped-def]
    link = create_active_link(client, container, core, wallet)
    intruder = make_partner()
    assert client.get(f"/v1/links/{link['id']}", headers=intruder.auth).status_code == 404
    assert client.get(f"/v1/links/{link['id']}/balance", headers=intruder.auth).status_code == 404
    assert client.delete(f"/v1/links/{link['id']}", headers=intruder.auth).status_code == 404
    assert (
        _post(client, f"/v1/links/{link['id']}/verify", intruder, {"code": "123456"}).status_code
        == 404
    )
    listed = client.get("/v1/links", headers=intruder.auth).json()
    assert link["id"] not in {item["id"] for item in listed["data"]}
    assert client.get(f"/v1/links/{link['id']}", headers=wallet.auth).status_code == 200


def test_operator_suspends_and_resumes(client, container, core, wallet, make_partner) -> None:  # type: ignore[no-untyped-def]
    link = create_active_link(client, container, core, wallet)
    operator = make_partner(kind="operator")

    def patch(status: str):  # type: ignore[no-untyped-def]
        return client.patch(
            f"/admin/v1/links/{link['id']}",
            headers=operator.auth,
            json={"status": status, "reason": "customer called the bank"},
        )

    assert patch("suspended").json()["status"] == "suspended"
    assert client.get(f"/v1/links/{link['id']}/balance", headers=wallet.auth).status_code == 409
    assert patch("active").json()["status"] == "active"
    assert client.get(f"/v1/links/{link['id']}/balance", headers=wallet.auth).status_code == 200
    assert patch("revoked").json()["status"] == "revoked"
    assert patch("active").status_code == 409


def test_sandbox_messages_for_operators(client, core, wallet, make_partner) -> None:  # type: ignore[no-untyped-def]
    _post(client, "/v1/links", wallet, link_body(core.open_account(mobile="+8613900001111")))
    operator = make_partner(kind="operator")
    messages = client.get("/admin/v1/sandbox/messages?limit=5", headers=operator.auth).json()[
        "data"
    ]
    assert any(m["to"] == "+8613900001111" and re.search(r"\d{6}", m["text"]) for m in messages)
    assert client.get("/admin/v1/sandbox/messages", headers=wallet.auth).status_code == 403


def test_no_account_number_or_otp_in_logs(client, container, core, wallet, captured_logs) -> None:  # type: ignore[no-untyped-def]
    account = core.open_account(mobile="+8613911112222")
    link = _post(client, "/v1/links", wallet, link_body(account)).json()
    code = last_code(container, "+8613911112222")
    _post(
        client, f"/v1/links/{link['id']}/verify", wallet, {"code": f"{(int(code) + 7) % 10**6:06d}"}
    )
    _post(client, f"/v1/links/{link['id']}/verify", wallet, {"code": code})
    client.get(f"/v1/links/{link['id']}/balance", headers=wallet.auth)
    logs = captured_logs()
    assert "OTP sent to ****2222" in logs
    assert account not in logs
    assert "13911112222" not in logs
    for line in logs.splitlines():
        record = json.loads(line)
        assert code not in json.dumps({k: v for k, v in record.items() if k != "timestamp"})
