"""Operator API for webhooks: attempts per event and endpoint, endpoint health, replay."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.domain.clock import FrozenClock, SystemClock, rfc3339
from gateway.store.tables import AuditEntry
from tests.webhook_sink import WebhookSink, WebhookWorld


class Ceiling(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def world(container: Any) -> Iterator[WebhookWorld]:
    world = WebhookWorld(container)
    yield world
    world.close()


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def fail_until_given_up(world: WebhookWorld, clock: FrozenClock, event_ids: list[str]) -> None:
    """Drive deliveries of `event_ids` through a short retry window until they are failed."""
    dispatcher = world.dispatcher(clock, rng=Ceiling(), webhook_retry_window_hours=0.01)
    for _ in range(20):
        dispatcher.run_once()
        clock.advance(seconds=40)
    for event_id in event_ids:
        assert {a.outcome for a in world.attempts(event_id)} == {"http_error"}


def test_operators_see_every_attempt_per_event_and_per_endpoint(  # type: ignore[no-untyped-def]
    client, make_partner, world
) -> None:
    clock = FrozenClock(SystemClock().now())
    answers: Iterator[int | tuple[int, dict[str, str], bytes]] = iter(
        [(500, {}, b"busy"), 204, 204]
    )
    with WebhookSink(lambda _r: next(answers)) as sink:
        partner = world.partner()
        first, _ = world.endpoint(partner, sink.url, ["transfer.*"])
        second, _ = world.endpoint(partner, sink.url + "/2", ["transfer.*"])
        event_id = world.emit(partner, at=clock.now())
        dispatcher = world.dispatcher(clock, rng=Ceiling())
        dispatcher.run_once()
        clock.advance(seconds=10)
        dispatcher.run_once()
    operator = make_partner(kind="operator")

    page = client.get(
        f"/admin/v1/webhook-deliveries?event_id={event_id}", headers=operator.auth
    ).json()
    deliveries = {d["endpoint_id"]: d for d in page["data"]}
    assert set(deliveries) == {first, second}
    outcomes = sorted(
        [(a["number"], a["outcome"], a["status_code"]) for a in d["attempts"]]
        for d in deliveries.values()
    )
    assert outcomes == [[(1, "delivered", 204)], [(1, "http_error", 500), (2, "delivered", 204)]]
    retried = next(d for d in deliveries.values() if d["attempt_count"] == 2)
    assert retried["status"] == "delivered" and retried["attempts"][0]["response_body"] == "busy"
    assert retried["event_type"] == "transfer.succeeded"

    only_first = client.get(
        f"/admin/v1/webhook-deliveries?endpoint_id={first}", headers=operator.auth
    ).json()
    assert [d["endpoint_id"] for d in only_first["data"]] == [first]
    by_partner = client.get(
        f"/admin/v1/webhook-deliveries?partner_id={partner}&status=delivered&limit=1",
        headers=operator.auth,
    ).json()
    assert len(by_partner["data"]) == 1 and by_partner["has_more"] is True
    health = client.get(
        f"/admin/v1/webhook-endpoints?partner_id={partner}", headers=operator.auth
    ).json()
    assert {e["id"]: e["status"] for e in health["data"]} == {first: "healthy", second: "healthy"}
    wallet = make_partner()
    assert client.get("/admin/v1/webhook-deliveries", headers=wallet.auth).status_code == 403


def test_an_attempt_keeps_its_duration_and_the_start_of_the_answer(  # type: ignore[no-untyped-def]
    client, make_partner, world
) -> None:
    """The receiver's answer is cut at `webhook_response_body_bytes` (bytes, not characters);
    a NUL (PostgreSQL text cannot hold one) and a character cut in half become U+FFFD."""
    limit = 16
    answer = b"A\x00" + b"B" * 13 + "\u00e9".encode() + b"C" * 500  # byte 16 splits the \u00e9
    assert len("\u00e9".encode()) == 2 and len(answer) > limit

    def slow_answer(_request: Any) -> tuple[int, dict[str, str], bytes]:
        time.sleep(0.2)
        return 503, {"Content-Type": "text/plain"}, answer

    clock = FrozenClock(SystemClock().now())
    with WebhookSink(slow_answer) as sink:
        partner = world.partner()
        world.endpoint(partner, sink.url, ["transfer.*"])
        event_id = world.emit(partner, at=clock.now())
        began = time.perf_counter()
        world.dispatcher(clock, webhook_response_body_bytes=limit).run_once()
        elapsed_ms = (time.perf_counter() - began) * 1000
        assert len(sink.by_event(event_id)) == 1
    operator = make_partner(kind="operator")

    page = client.get(
        f"/admin/v1/webhook-deliveries?event_id={event_id}", headers=operator.auth
    ).json()
    [delivery] = page["data"]
    [attempt] = delivery["attempts"]
    assert (attempt["outcome"], attempt["status_code"]) == ("http_error", 503)
    assert attempt["response_body"] == "A\ufffd" + "B" * 13 + "\ufffd"
    assert attempt["error"] == "HTTP 503"
    # The receiver took 200 ms; the attempt cannot have taken longer than the whole run.
    assert 190 <= attempt["duration_ms"] <= elapsed_ms + 1, (attempt, elapsed_ms)
    assert attempt["started_at"] == rfc3339(clock.now())


def test_replay_one_event_through_the_api(client, make_partner, world) -> None:  # type: ignore[no-untyped-def]
    clock = SystemClock()
    operator = make_partner(kind="operator")
    with WebhookSink() as sink:
        partner = world.partner()
        endpoint_id, _ = world.endpoint(partner, sink.url, ["transfer.*"])
        event_id = world.emit(partner, at=clock.now())
        dispatcher = world.dispatcher(clock)
        dispatcher.run_once()
        late, _ = world.endpoint(partner, sink.url + "/late", ["link.*"])  # after the event

        key = _key()
        response = client.post(
            "/admin/v1/webhook-deliveries/replay",
            json={"event_id": event_id},
            headers={**operator.auth, **key},
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"queued": 1, "skipped": 0}
        again = client.post(
            "/admin/v1/webhook-deliveries/replay",
            json={"event_id": event_id},
            headers={**operator.auth, **key},
        )
        assert again.json() == {"queued": 1, "skipped": 0}
        assert again.headers["Idempotent-Replayed"] == "true"
        dispatcher.run_once()
        copies = sink.by_event(event_id)
        assert len(copies) == 2 and copies[0].body == copies[1].body

        # An endpoint created after the event can be given it explicitly.
        to_late = client.post(
            "/admin/v1/webhook-deliveries/replay",
            json={"event_id": event_id, "endpoint_id": late},
            headers={**operator.auth, **_key()},
        )
        assert to_late.json() == {"queued": 1, "skipped": 0}
        dispatcher.run_once()
        assert [r.path for r in sink.by_event(event_id)] == ["/hooks", "/hooks", "/hooks/late"]

        # A disabled endpoint is skipped, not sent to.
        world.endpoints_service().update(partner, endpoint_id, {"enabled": False})
        skipped = client.post(
            "/admin/v1/webhook-deliveries/replay",
            json={"event_id": event_id, "endpoint_id": endpoint_id},
            headers={**operator.auth, **_key()},
        )
        assert skipped.json() == {"queued": 0, "skipped": 1}

    with world.container.db.read() as session:
        audit = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "webhook_deliveries.replayed",
                AuditEntry.target_id == event_id,
            )
        ).all()
    assert len(audit) == 3 and {a.actor for a in audit} == {f"operator:{operator.id}"}


def test_replay_the_failed_deliveries_of_a_time_range(client, make_partner, world) -> None:  # type: ignore[no-untyped-def]
    clock = FrozenClock(SystemClock().now())
    operator = make_partner(kind="operator")
    answer = {"status": 500}
    recovered = ""

    def respond(request: Any) -> int:
        # `recovered` fails once, then is delivered: it has a failed attempt but is done.
        if request.event_id == recovered and len(sink.by_event(recovered)) > 1:
            return 204
        return answer["status"]

    with WebhookSink(respond) as sink:
        partner = world.partner()
        endpoint_id, _ = world.endpoint(partner, sink.url, ["transfer.*"])
        before = world.emit(partner, at=clock.now() - timedelta(hours=1))
        inside = world.emit(partner, at=clock.now())
        recovered = world.emit(partner, at=clock.now())
        fail_until_given_up(world, clock, [before, inside])
        assert world.delivery(inside, endpoint_id).status == "failed"
        done = world.delivery(recovered, endpoint_id)
        assert (done.status, done.schedule_step) == ("delivered", 1)
        assert [a.outcome for a in world.attempts(recovered)] == ["http_error", "delivered"]

        answer["status"] = 204
        since = clock.now() - timedelta(minutes=30)
        response = client.post(
            "/admin/v1/webhook-deliveries/replay",
            json={"since": rfc3339(since), "until": rfc3339(clock.now() + timedelta(minutes=30)),
                  "endpoint_id": endpoint_id},
            headers={**operator.auth, **_key()},
        )  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.json() == {"queued": 1, "skipped": 0}  # not the delivered one
        world.dispatcher(world.container.clock).run_once()
        assert len(sink.by_event(inside)) > 1
        assert len(sink.by_event(recovered)) == 2  # not sent again

    assert world.delivery(inside, endpoint_id).status == "delivered"
    assert world.delivery(recovered, endpoint_id).delivered_at == done.delivered_at
    assert world.delivery(before, endpoint_id).status == "failed"
    delivered = world.delivery(inside, endpoint_id)
    assert delivered.schedule_step == 0 and delivered.retry_until is None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_replay_selection"),
        ({"since": "2026-01-01T00:00:00Z"}, "invalid_replay_selection"),
        ({"event_id": "evt_x", "since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"},
         "invalid_replay_selection"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "invalid_time_range"),
        ({"since": "yesterday", "until": "2026-01-01T00:00:00Z"}, "validation_failed"),
        ({"since": "2026-01-01T00:00:00", "until": "2026-01-02T00:00:00Z"}, "validation_failed"),
    ],
)  # fmt: skip
def test_replay_requests_must_say_what_to_replay(client, make_partner, body, code) -> None:  # type: ignore[no-untyped-def]
    operator = make_partner(kind="operator")
    response = client.post(
        "/admin/v1/webhook-deliveries/replay", json=body, headers={**operator.auth, **_key()}
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code


def test_replaying_an_unknown_event_is_a_404(client, make_partner) -> None:  # type: ignore[no-untyped-def]
    operator = make_partner(kind="operator")
    response = client.post(
        "/admin/v1/webhook-deliveries/replay",
        json={"event_id": "evt_01jaaaaaaaaaaaaaaaaaaaaaaa"},
        headers={**operator.auth, **_key()},
    )
    assert response.status_code == 404 and response.json()["code"] == "event_not_found"
