"""GET /v1/links: walking the cursor to the end, with and without a status filter."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from tests.flows import last_code, link_body, post_json


def _walk(client, partner, **params: Any) -> list[str]:  # type: ignore[no-untyped-def]
    """Every link id, page after page, following next_cursor until has_more is false."""
    ids: list[str] = []
    cursor = params.pop("cursor", None)
    for _ in range(50):
        response = client.get(
            "/v1/links",
            params={**params, **({"cursor": cursor} if cursor else {})},
            headers=partner.auth,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [link["id"] for link in body["data"]]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return ids
        assert body["next_cursor"] and len(body["data"]) == params["limit"]
        cursor = body["next_cursor"]
    raise AssertionError("the cursor never ran out")


def _pending_link(client, core, partner) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    mobile = f"+86139{uuid.uuid4().int % 10**8:08d}"
    created = post_json(client, "/v1/links", partner, link_body(core.open_account(mobile=mobile)))
    assert created.status_code == 201, created.text
    return created.json()["id"], mobile


def test_following_the_cursor_returns_each_link_once(client, container, core, make_partner) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    created = [_pending_link(client, core, partner) for _ in range(5)]
    ids = [link_id for link_id, _ in created]
    newest_first = list(reversed(ids))
    for limit in (1, 2, 3, 5, 6):
        assert _walk(client, partner, limit=limit) == newest_first, limit

    first = client.get("/v1/links", params={"limit": 2}, headers=partner.auth).json()
    newer, _ = _pending_link(client, core, partner)  # created mid-walk: before the cursor
    rest = _walk(client, partner, limit=2, cursor=first["next_cursor"])
    assert [link["id"] for link in first["data"]] + rest == newest_first

    for link_id, mobile in created[:3]:  # three become active: the filter holds on every page
        verified = post_json(
            client, f"/v1/links/{link_id}/verify", partner, {"code": last_code(container, mobile)}
        )
        assert verified.status_code == 200, verified.text
    active = list(reversed(ids[:3]))
    assert _walk(client, partner, limit=2, status="active") == active
    assert _walk(client, partner, limit=1, status="pending_verification") == [
        newer,
        *reversed(ids[3:]),
    ]

    stranger = make_partner()
    assert _walk(client, stranger, limit=2) == []
    # A cursor names a position, not a partner: another partner's cursor reveals nothing.
    assert _walk(client, stranger, limit=2, cursor=first["next_cursor"]) == []


def test_a_cursor_that_was_not_issued_is_a_400(client, make_partner) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    response = client.get("/v1/links", params={"cursor": "x!"}, headers=partner.auth)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"


def test_the_status_filter_sees_what_reads_show(
    client, container, core, make_partner, restore_clock
) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    mobile = f"+86139{uuid.uuid4().int % 10**8:08d}"
    body = link_body(core.open_account(mobile=mobile))
    body["consent"]["expires_at"] = (restore_clock.now() + timedelta(hours=1)).isoformat()
    link = post_json(client, "/v1/links", partner, body).json()
    post_json(
        client, f"/v1/links/{link['id']}/verify", partner, {"code": last_code(container, mobile)}
    )
    restore_clock.advance(hours=2)  # consent lapsed; the sweeper has not run
    partner.renew()
    shown = client.get(f"/v1/links/{link['id']}", headers=partner.auth).json()["status"]
    assert shown == "expired"
    active = client.get("/v1/links", params={"status": "active"}, headers=partner.auth).json()
    expired = client.get("/v1/links", params={"status": "expired"}, headers=partner.auth).json()
    assert [item["status"] for item in active["data"]] == []
    assert [item["id"] for item in expired["data"]] == [link["id"]]
