"""The webhook dispatcher against a real loopback receiver: signing, retries, health, leases."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from gateway.domain.clock import FrozenClock, SystemClock
from gateway.security.ssrf import TargetPolicy
from gateway.services.webhooks import AttemptResult
from gateway.store.events import record_event
from gateway.store.tables import (
    AuditEntry,
    Event,
    VaultEntry,
    WebhookDelivery,
    WebhookEndpoint,
)
from tests.event_schemas import assert_event_matches_schema
from tests.webhook_sink import WebhookSink, WebhookWorld


class Ceiling(random.Random):
    """Jitter pinned to the top of its range, so the schedule is exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def world(container: Any, app: Any) -> Iterator[WebhookWorld]:  # app: logging is configured
    world = WebhookWorld(container)
    yield world
    world.close()


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as receiver:
        yield receiver


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_a_real_delivery_verifies_with_the_official_library(world, sink) -> None:  # type: ignore[no-untyped-def]
    clock = SystemClock()  # the official verifier checks the timestamp against real time
    partner = world.partner()
    endpoint_id, secret = world.endpoint(partner, sink.url, ["transfer.*"])
    event_id = world.emit(partner, "transfer.succeeded", at=clock.now())
    delivered = _sample("gateway_webhook_delivery_attempts_total", {"outcome": "delivered"})

    assert world.dispatcher(clock).run_once() >= 1

    [request] = sink.by_event(event_id)
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["id"] == event_id and payload["type"] == "transfer.succeeded"
    assert_event_matches_schema(request.body)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("wallet-gateway-webhooks/")
    assert "cookie" not in request.headers
    delivery = world.delivery(event_id, endpoint_id)
    assert delivery.status == "delivered" and delivery.attempts == 1
    [attempt] = world.attempts(event_id)
    assert (attempt.outcome, attempt.status_code, attempt.number) == ("delivered", 204, 1)
    assert _sample("gateway_webhook_delivery_attempts_total", {"outcome": "delivered"}) == (
        delivered + 1
    )


def test_retries_back_off_exponentially_for_about_three_days(world) -> None:  # type: ignore[no-untyped-def]
    clock = FrozenClock()
    with WebhookSink(lambda _r: (500, {}, b"nope")) as sink:
        partner = world.partner()
        endpoint_id, _secret = world.endpoint(partner, sink.url, ["transfer.*"])
        event_id = world.emit(partner, at=clock.now())
        dispatcher = world.dispatcher(clock, rng=Ceiling())
        started = clock.now()
        delays = []
        for _ in range(100):
            dispatcher.run_once()
            delivery = world.delivery(event_id, endpoint_id)
            if delivery.status != "pending":
                break
            delays.append((delivery.next_attempt_at - clock.now()).total_seconds())
            clock.set(delivery.next_attempt_at)
        received = sink.by_event(event_id)

    assert delivery.status == "failed"
    assert delays[:13] == [5 * 2**n for n in range(13)]  # 5 s, 10 s, ... 20480 s
    assert set(delays[13:-1]) == {21600.0}  # capped at 6 h
    assert 0 < delays[-1] <= 21600  # the last wait ends exactly when the window closes
    assert clock.now() - started == timedelta(hours=72)
    assert len(received) == len(delays) + 1 == delivery.attempts
    assert len({r.body for r in received}) == 1  # identical bytes on every attempt
    assert {r.event_id for r in received} == {event_id}
    stamps = [int(r.headers["webhook-timestamp"]) for r in received]
    assert stamps == sorted(stamps) and stamps[0] < stamps[-1]
    attempts = world.attempts(event_id)
    assert [a.number for a in attempts] == list(range(1, len(received) + 1))
    assert {(a.outcome, a.status_code, a.response_body) for a in attempts} == {
        ("http_error", 500, "nope")
    }


def test_jittered_waits_stay_below_their_ceilings(world) -> None:  # type: ignore[no-untyped-def]
    clock = FrozenClock()
    with WebhookSink(lambda _r: 503) as sink:
        partner = world.partner()
        endpoint_id, _secret = world.endpoint(partner, sink.url, ["transfer.*"])
        event_id = world.emit(partner, at=clock.now())
        dispatcher = world.dispatcher(clock, rng=random.Random(2024))
        for step in range(8):
            dispatcher.run_once()
            delivery = world.delivery(event_id, endpoint_id)
            wait = (delivery.next_attempt_at - clock.now()).total_seconds()
            assert 1.0 <= wait <= max(1.0, 5 * 2**step)
            clock.set(delivery.next_attempt_at)


def test_retry_after_from_the_receiver_is_honoured(world) -> None:  # type: ignore[no-untyped-def]
    clock = FrozenClock()
    with WebhookSink(lambda _r: (429, {"Retry-After": "600"}, b"")) as sink:
        partner = world.partner()
        endpoint_id, _secret = world.endpoint(partner, sink.url, ["transfer.*"])
        event_id = world.emit(partner, at=clock.now())
        world.dispatcher(clock, rng=Ceiling()).run_once()
    delivery = world.delivery(event_id, endpoint_id)
    assert delivery.next_attempt_at - clock.now() == timedelta(seconds=600)
    assert delivery.last_status_code == 429


def test_an_endpoint_fails_then_recovers_and_the_operator_is_told(  # type: ignore[no-untyped-def]
    world, captured_logs
) -> None:
    clock = FrozenClock()
    answer = {"status": 503}
    with WebhookSink(lambda _r: answer["status"]) as sink:
        partner = world.partner()
        endpoint_id, _secret = world.endpoint(partner, sink.url, ["transfer.*"])
        dispatcher = world.dispatcher(
            clock, rng=Ceiling(), webhook_failing_after_failures=3, webhook_failing_after_minutes=10
        )
        failing_before = _sample("gateway_webhook_endpoint_transitions_total", {"to": "failing"})
        event_id = world.emit(partner, at=clock.now())

        def attempt() -> WebhookEndpoint:
            dispatcher.run_once()
            clock.set(world.delivery(event_id, endpoint_id).next_attempt_at)
            with world.container.db.read() as session:
                return session.get(WebhookEndpoint, endpoint_id)

        # Three quick failures are a blip, not yet "persistent".
        states = [attempt().status for _ in range(3)]
        assert states == ["healthy"] * 3
        clock.advance(minutes=10)
        endpoint = attempt()
        assert endpoint.status == "failing" and endpoint.consecutive_failures == 4

        answer["status"] = 200
        endpoint = attempt()
        assert endpoint.status == "healthy" and endpoint.consecutive_failures == 0
        assert world.delivery(event_id, endpoint_id).status == "delivered"

    assert _sample("gateway_webhook_endpoint_transitions_total", {"to": "failing"}) == (
        failing_before + 1
    )
    with world.container.db.read() as session:
        audit = session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.target_id == endpoint_id, AuditEntry.actor.like("system:%"))
            .order_by(AuditEntry.id)
        ).all()
        events = session.scalars(
            select(Event).where(Event.resource_id == endpoint_id).order_by(Event.sequence)
        ).all()
    assert audit == ["webhook_endpoint.failing", "webhook_endpoint.recovered"]
    assert [e.type for e in events] == ["webhook_endpoint.failing", "webhook_endpoint.recovered"]
    for event in events:
        assert_event_matches_schema(event)
        assert event.partner_id == partner
    assert events[0].data["status"] == "failing" and events[0].data["consecutive_failures"] == 4
    logs = [json.loads(line) for line in captured_logs().splitlines()]
    assert any(
        line["event"] == "webhook_endpoint_failing" and line["endpoint_id"] == endpoint_id
        for line in logs
    )


def test_secret_rotation_signs_with_both_secrets_during_the_overlap(world, sink) -> None:  # type: ignore[no-untyped-def]
    clock = FrozenClock(SystemClock().now())
    partner = world.partner()
    endpoint_id, old = world.endpoint(partner, sink.url, ["transfer.*"], clock=clock)
    _view, new = world.endpoints_service(clock, overlap_hours=24).rotate_secret(
        partner, endpoint_id
    )
    dispatcher = world.dispatcher(clock)

    during = world.emit(partner, at=clock.now())
    dispatcher.run_once()
    [request] = sink.by_event(during)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(request.body, request.headers)["id"] == during
    assert Webhook(old).verify(request.body, request.headers)["id"] == during

    clock.advance(hours=24, seconds=1)
    after = world.emit(partner, at=clock.now())
    dispatcher.run_once()
    [request] = sink.by_event(after)
    # The clock is a day ahead of the verifier's, so compare with the library's own signing.
    moment = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
    expected = Webhook(new).sign(after, moment, request.body.decode())
    assert request.headers["webhook-signature"] == expected
    assert (
        Webhook(old).sign(after, moment, request.body.decode())
        not in (request.headers["webhook-signature"])
    )


def test_a_disabled_endpoint_receives_nothing(world, sink) -> None:  # type: ignore[no-untyped-def]
    clock = SystemClock()
    partner = world.partner()
    endpoint_id, _secret = world.endpoint(partner, sink.url, ["transfer.*"])
    service = world.endpoints_service()
    queued = world.emit(partner, at=clock.now())
    service.update(partner, endpoint_id, {"enabled": False})
    while_disabled = world.emit(partner, at=clock.now())
    dispatcher = world.dispatcher(clock)

    dispatcher.run_once()
    assert sink.received == []
    assert world.delivery(queued, endpoint_id).status == "pending"  # held, not expired
    assert world.delivery(while_disabled, endpoint_id) is None  # never queued

    service.update(partner, endpoint_id, {"enabled": True})
    dispatcher.run_once()
    assert [r.event_id for r in sink.received] == [queued]


def test_only_matching_endpoints_of_the_partner_get_a_delivery(world, sink) -> None:  # type: ignore[no-untyped-def]
    partner, other = world.partner(), world.partner()
    transfers, _ = world.endpoint(partner, sink.url, ["transfer.*"])
    links, _ = world.endpoint(partner, sink.url, ["link.active", "link.revoked"])
    everything, _ = world.endpoint(partner, sink.url, ["*"])
    elsewhere, _ = world.endpoint(other, sink.url, ["*"])
    event_id = world.emit(partner, "transfer.failed")
    with world.container.db.read() as session:
        targets = set(
            session.scalars(
                select(WebhookDelivery.endpoint_id).where(WebhookDelivery.event_id == event_id)
            )
        )
    assert targets == {transfers, everything}
    assert links not in targets and elsewhere not in targets


def test_an_event_and_its_deliveries_commit_or_roll_back_together(world, sink) -> None:  # type: ignore[no-untyped-def]
    partner = world.partner()
    world.endpoint(partner, sink.url, ["*"])
    resource_id = "tr_01jaaaaaaaaaaaaaaaaaaaaaaa"

    class Boom(Exception):
        pass

    def change_that_fails() -> None:
        with world.container.db.transaction() as session:
            record_event(
                session,
                type="transfer.processing",
                resource_type="transfer",
                resource_id=resource_id,
                sequence=1,
                data={"id": resource_id, "status": "created"},
                partner_id=partner,
                at=world.container.clock.now(),
            )
            raise Boom

    with pytest.raises(Boom):
        change_that_fails()
    with world.container.db.read() as session:
        assert session.scalars(select(Event).where(Event.resource_id == resource_id)).all() == []
        assert (
            session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.partner_id == partner)
            ).all()
            == []
        )


def test_the_target_is_checked_again_at_delivery_time(world, sink) -> None:  # type: ignore[no-untyped-def]
    clock = SystemClock()
    partner = world.partner()
    endpoint_id, _ = world.endpoint(partner, sink.url, ["transfer.*"])
    event_id = world.emit(partner, at=clock.now())
    dispatcher = world.dispatcher(clock)
    # The name now resolves to a private address (e.g. a DNS change after registration).
    dispatcher.policy = TargetPolicy(allow_http=True, resolver=lambda host, port: ["10.1.2.3"])
    dispatcher.run_once()
    assert sink.received == []
    [attempt] = world.attempts(event_id)
    assert attempt.outcome == "blocked" and "private" in (attempt.error or "")
    assert world.delivery(event_id, endpoint_id).status == "pending"  # retried later


def test_the_connection_guard_defeats_dns_rebinding(world, sink) -> None:  # type: ignore[no-untyped-def]
    clock = SystemClock()
    partner = world.partner()
    world.endpoint(partner, sink.url, ["transfer.*"])
    event_id = world.emit(partner, at=clock.now())
    dispatcher = world.dispatcher(clock)
    # The pre-flight lookup sees a public address, the connection lands on loopback.
    dispatcher.policy = TargetPolicy(allow_http=True, resolver=lambda host, port: ["93.184.216.34"])
    dispatcher.run_once()
    assert sink.received == []
    [attempt] = world.attempts(event_id)
    assert attempt.outcome == "blocked" and "loopback" in (attempt.error or "")


def test_redirects_are_not_followed(world) -> None:  # type: ignore[no-untyped-def]
    clock = SystemClock()
    with WebhookSink(lambda _r: (307, {"Location": "http://127.0.0.1:9/elsewhere"}, b"")) as sink:
        partner = world.partner()
        world.endpoint(partner, sink.url, ["transfer.*"])
        event_id = world.emit(partner, at=clock.now())
        world.dispatcher(clock).run_once()
    assert len(sink.received) == 1
    [attempt] = world.attempts(event_id)
    assert (attempt.outcome, attempt.status_code) == ("http_error", 307)


def test_a_slow_receiver_times_out(world) -> None:  # type: ignore[no-untyped-def]
    clock = SystemClock()

    def slow(_request: Any) -> int:
        time.sleep(1.0)
        return 200

    with WebhookSink(slow) as sink:
        partner = world.partner()
        world.endpoint(partner, sink.url, ["transfer.*"])
        event_id = world.emit(partner, at=clock.now())
        world.dispatcher(clock, webhook_read_timeout_seconds=0.2).run_once()
    [attempt] = world.attempts(event_id)
    assert attempt.outcome == "timeout" and attempt.status_code is None
    assert sink.url not in (attempt.error or "")  # no URL (maybe with credentials) in errors


def test_an_endpoint_that_hangs_is_paused_instead_of_tying_up_the_dispatcher(world) -> None:  # type: ignore[no-untyped-def]
    clock = FrozenClock(SystemClock().now())
    hanging = {"on": True}

    def answer(_request: Any) -> int:
        if hanging["on"]:
            time.sleep(0.5)
        return 200

    with WebhookSink(answer) as sink:
        partner = world.partner()
        endpoint_id, _ = world.endpoint(partner, sink.url, ["transfer.*"])
        events = [world.emit(partner, at=clock.now()) for _ in range(4)]
        dispatcher = world.dispatcher(clock, webhook_read_timeout_seconds=0.2)
        assert dispatcher.run_once() == 4
        assert len(sink.received) == 1  # one timeout, the other three were given back
        with world.container.db.read() as session:
            paused_until = session.get(WebhookEndpoint, endpoint_id).paused_until
        assert paused_until == clock.now() + timedelta(seconds=10)
        assert sorted(world.delivery(e, endpoint_id).attempts for e in events) == [0, 0, 0, 1]
        assert dispatcher.run_once() == 0  # nothing is claimed for it while paused

        hanging["on"] = False
        clock.advance(seconds=11)
        for _ in range(3):
            dispatcher.run_once()
            clock.advance(seconds=10)
    assert {world.delivery(e, endpoint_id).status for e in events} == {"delivered"}
    with world.container.db.read() as session:
        assert session.get(WebhookEndpoint, endpoint_id).paused_until is None


def test_a_dead_dispatchers_claim_is_retried_after_its_lease(world, sink, captured_logs) -> None:  # type: ignore[no-untyped-def]
    clock = FrozenClock(SystemClock().now())
    partner = world.partner()
    endpoint_id, _ = world.endpoint(partner, sink.url, ["transfer.*"])
    event_id = world.emit(partner, at=clock.now())
    crashed, survivor = world.dispatcher(clock), world.dispatcher(clock)

    [job] = [j for j in crashed.claim(100) if j.event_id == event_id]  # ... and then it dies
    assert survivor.run_once() == 0  # the claim holds while the lease lasts
    clock.advance(seconds=crashed.settings.webhook_lease_seconds + 1)
    survivor.run_once()
    assert len(sink.by_event(event_id)) == 1
    delivery = world.delivery(event_id, endpoint_id)
    assert delivery.status == "delivered" and delivery.attempts == 2

    # Back from the dead, the first dispatcher sees its lease is over and sends nothing ...
    assert crashed.process(job) is None
    assert len(sink.by_event(event_id)) == 1
    # ... and had it sent after all, its late result is kept but changes nothing.
    crashed.record(job, AttemptResult("http_error", clock.now(), 5, status_code=500))
    assert world.delivery(event_id, endpoint_id).status == "delivered"
    assert [(a.number, a.outcome) for a in world.attempts(event_id)] == [
        (1, "http_error"),
        (2, "delivered"),
    ]
    assert "webhook_claim_lost" in captured_logs()


def test_a_claim_too_short_for_an_attempt_is_given_back(world, sink) -> None:  # type: ignore[no-untyped-def]
    clock = FrozenClock(SystemClock().now())
    partner = world.partner()
    endpoint_id, _ = world.endpoint(partner, sink.url, ["transfer.*"])
    event_id = world.emit(partner, at=clock.now())
    slow, other = world.dispatcher(clock), world.dispatcher(clock)
    [job] = [j for j in slow.claim(100) if j.event_id == event_id]
    clock.advance(seconds=slow.settings.webhook_lease_seconds - 10)  # < timeouts + margin left
    assert slow.process(job) is None
    assert sink.received == []
    assert world.delivery(event_id, endpoint_id).attempts == 0
    other.run_once()
    assert world.delivery(event_id, endpoint_id).status == "delivered"
    assert [a.number for a in world.attempts(event_id)] == [1]


def test_housekeeping_drops_expired_secrets_and_old_deliveries(world, sink) -> None:  # type: ignore[no-untyped-def]
    from gateway.services.webhooks import WebhookOperations

    now = SystemClock().now()
    partner = world.partner()
    endpoint_id, _ = world.endpoint(partner, sink.url, ["transfer.*"])
    world.endpoints_service(FrozenClock(now - timedelta(days=2))).rotate_secret(
        partner, endpoint_id
    )
    event_id = world.emit(partner, at=now)
    world.dispatcher(SystemClock()).run_once()
    with world.container.db.read() as session:
        previous = session.get(WebhookEndpoint, endpoint_id).previous_secret_ref
    assert previous is not None

    later = FrozenClock(now + timedelta(days=31))
    WebhookOperations(world.container.db, later, world.container.settings).housekeeping()
    with world.container.db.read() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint.previous_secret_ref is None
        assert session.get(VaultEntry, previous) is None
        assert session.get(VaultEntry, endpoint.secret_ref) is not None
    assert world.delivery(event_id, endpoint_id) is None
    assert world.attempts(event_id) == []


def test_the_dispatcher_and_housekeeping_are_background_jobs(container) -> None:  # type: ignore[no-untyped-def]
    from gateway.workers.jobs import default_jobs

    jobs = {job.name: job for job in default_jobs(container)}
    dispatcher = jobs["webhook-dispatcher"]
    assert dispatcher.batch_size == container.settings.webhook_dispatch_batch_size
    assert dispatcher.interval_seconds == container.settings.webhook_dispatch_interval_seconds
    assert "webhook-housekeeping" in jobs
    assert dispatcher.run() >= 0  # runs against the real database
