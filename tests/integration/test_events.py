"""GET /v1/events (and /admin/v1/events): a partner's own events, paged and filtered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.store.tables import Event
from tests.event_schemas import assert_event_matches_schema
from tests.webhook_sink import WebhookWorld

TYPES = [
    "transfer.processing",
    "transfer.succeeded",
    "link.active",
    "transfer.failed",
    "link.revoked",
]


@pytest.fixture
def two_partners(container: Any, make_partner: Any) -> tuple[Any, Any, list[str], list[str]]:
    world = WebhookWorld(container)
    mine, theirs = make_partner(), make_partner()
    my_events = [world.emit(mine.id, type) for type in TYPES]
    their_events = [world.emit(theirs.id, type) for type in TYPES[:2]]
    return mine, theirs, my_events, their_events


def _all_pages(client: Any, auth: dict[str, str], query: str) -> list[dict[str, Any]]:
    items, cursor, pages = [], None, 0
    while True:
        url = f"/v1/events?{query}" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=auth).json()
        items += page["data"]
        pages += 1
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return items
        cursor = page["next_cursor"]
        assert pages < 20


def test_pages_newest_first_and_only_the_partners_own(
    client, two_partners, container, restore_clock
) -> None:  # type: ignore[no-untyped-def]
    mine, _theirs, my_events, their_events = two_partners
    items = _all_pages(client, mine.auth, "limit=2")
    # Ids are time-ordered (ULIDs); within one millisecond their order is arbitrary but fixed.
    assert [e["id"] for e in items] == sorted(my_events, reverse=True)
    assert not set(their_events) & {e["id"] for e in items}
    for item in items:
        assert_event_matches_schema(item)
    # Oldest first trails the present by the settle time: a just-written event may still be
    # committing behind one already read, so it is not served yet.
    assert _all_pages(client, mine.auth, "limit=3&order=asc") == []
    restore_clock.advance(seconds=container.settings.events_settle_seconds + 1)
    mine.renew()
    oldest_first = _all_pages(client, mine.auth, "limit=3&order=asc")
    assert [e["id"] for e in oldest_first] == sorted(my_events)


def test_oldest_first_never_serves_an_event_ahead_of_an_older_one_still_committing(
    client, container, make_partner, restore_clock
) -> None:  # type: ignore[no-untyped-def]
    """A transaction takes an event id, another event is written and read after it, then the
    first commits: reading oldest-first from the cursor still finds it."""
    world = WebhookWorld(container)
    partner = make_partner()
    settle = container.settings.events_settle_seconds
    early = world.emit(partner.id, "transfer.processing")  # id taken, as if still committing
    with container.db.transaction() as session:  # ...which we model by hiding it for now
        held = session.get(Event, early)
        session.delete(held)
        session.flush()
        kept = {c.key: getattr(held, c.key) for c in Event.__table__.columns}
    later = world.emit(partner.id, "transfer.succeeded")
    restore_clock.advance(seconds=settle / 2)  # the later one is younger than the settle time
    partner.renew()
    assert _all_pages(client, partner.auth, "order=asc") == []
    with container.db.transaction() as session:  # the slow transaction commits
        session.add(Event(**kept))
    restore_clock.advance(seconds=settle)
    partner.renew()
    assert [e["id"] for e in _all_pages(client, partner.auth, "order=asc")] == [early, later]


def test_type_and_resource_filters(client, two_partners) -> None:  # type: ignore[no-untyped-def]
    mine, _theirs, my_events, _ = two_partners
    page = client.get("/v1/events?type=transfer.failed&type=link.active", headers=mine.auth).json()
    wanted = {my_events[2], my_events[3]}
    assert [e["id"] for e in page["data"]] == sorted(wanted, reverse=True)
    assert {e["type"] for e in page["data"]} == {"transfer.failed", "link.active"}
    first = client.get(f"/v1/events/{my_events[0]}", headers=mine.auth).json()
    by_resource = client.get(
        f"/v1/events?resource_id={first['resource']['id']}", headers=mine.auth
    ).json()
    assert [e["id"] for e in by_resource["data"]] == [my_events[0]]
    assert client.get("/v1/events?type=nothing.like_this", headers=mine.auth).json()["data"] == []


def test_one_event_and_another_partners_event(client, two_partners) -> None:  # type: ignore[no-untyped-def]
    mine, theirs, my_events, their_events = two_partners
    response = client.get(f"/v1/events/{my_events[1]}", headers=mine.auth)
    assert response.status_code == 200
    assert assert_event_matches_schema(response.json())["type"] == "transfer.succeeded"
    for event_id in (their_events[0], "evt_01jaaaaaaaaaaaaaaaaaaaaaaa"):
        missing = client.get(f"/v1/events/{event_id}", headers=mine.auth)
        assert missing.status_code == 404 and missing.json()["code"] == "event_not_found"
    assert client.get(f"/v1/events/{my_events[0]}", headers=theirs.auth).status_code == 404


def test_bad_cursor_and_missing_scope(client, make_partner, two_partners) -> None:  # type: ignore[no-untyped-def]
    mine, *_ = two_partners
    bad = client.get("/v1/events?cursor=bm90LWFuLWlk", headers=mine.auth)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
    no_scope = make_partner(scopes=["partner:read"])
    assert client.get("/v1/events", headers=no_scope.auth).status_code == 403


def test_operators_see_every_partners_events(client, make_partner, two_partners) -> None:  # type: ignore[no-untyped-def]
    mine, theirs, my_events, their_events = two_partners
    operator = make_partner(kind="operator")
    page = client.get(
        f"/admin/v1/events?partner_id={theirs.id}&limit=50", headers=operator.auth
    ).json()
    assert [e["id"] for e in page["data"]] == sorted(their_events, reverse=True)
    typed = client.get(
        f"/admin/v1/events?partner_id={mine.id}&type=link.revoked", headers=operator.auth
    ).json()
    assert [e["id"] for e in typed["data"]] == [my_events[-1]]
    assert client.get("/admin/v1/events", headers=mine.auth).status_code == 403


def test_an_uncatalogued_type_is_logged_as_an_error_but_still_recorded(  # type: ignore[no-untyped-def]
    client, container, app, make_partner, captured_logs
) -> None:
    """`record_event` never rolls back a state change over a missing schema (see its docstring):
    it records the event, queues it for wildcard endpoints, and logs the defect loudly."""
    world = WebhookWorld(container)
    partner = make_partner()
    try:
        endpoint_id, _ = world.endpoint(partner.id, "http://127.0.0.1:9/hooks", ["transfer.*"])
        known = world.emit(partner.id, "transfer.succeeded")
        assert "event_type_not_in_catalogue" not in captured_logs()

        unknown = world.emit(partner.id, "transfer.teleported")

        lines = [
            json.loads(line)
            for line in captured_logs().splitlines()
            if "event_type_not_in_catalogue" in line
        ]
        [line] = lines
        assert line["level"] == "error" and line["event_type"] == "transfer.teleported"
        assert line["resource_type"] == "transfer"
        response = client.get(f"/v1/events/{unknown}", headers=partner.auth)
        assert response.status_code == 200 and response.json()["type"] == "transfer.teleported"
        assert world.delivery(unknown, endpoint_id) is not None
        assert world.delivery(known, endpoint_id) is not None
    finally:
        world.close()
