"""Several dispatchers on one PostgreSQL never send the same attempt twice, and miss nothing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.domain.clock import SystemClock
from gateway.domain.ids import new_id
from gateway.store.db import Database
from gateway.store.events import record_event
from gateway.store.tables import WebhookAttempt, WebhookDelivery
from tests.webhook_sink import WebhookSink, WebhookWorld

EVENTS = 1000


@pytest.mark.postgres_only
def test_two_dispatchers_deliver_a_thousand_events_exactly_once(container: Any) -> None:
    world = WebhookWorld(container)
    clock = SystemClock()
    with WebhookSink() as sink:
        partner = world.partner()
        endpoint_id, _ = world.endpoint(partner, sink.url, ["transfer.*"])
        events: list[str] = []
        for _ in range(EVENTS // 100):
            with container.db.transaction() as session:
                for _ in range(100):
                    resource_id = new_id("tr")
                    event = record_event(
                        session,
                        type="transfer.succeeded",
                        resource_type="transfer",
                        resource_id=resource_id,
                        sequence=1,
                        data={"id": resource_id, "status": "succeeded"},
                        partner_id=partner,
                        at=clock.now(),
                    )
                    events.append(event.id)

        def undelivered() -> int:
            with container.db.read() as session:
                return int(
                    session.scalar(
                        select(func.count())
                        .select_from(WebhookDelivery)
                        .where(
                            WebhookDelivery.endpoint_id == endpoint_id,
                            WebhookDelivery.status != "delivered",
                        )
                    )
                    or 0
                )

        engines = [Database.from_settings(container.settings) for _ in range(2)]
        dispatchers = [
            world.dispatcher(
                clock,
                db=db,
                webhook_dispatch_concurrency=4,
                webhook_dispatch_batch_size=50,
            )
            for db in engines
        ]
        claimed = Counter[int]()
        failures: list[BaseException] = []
        deadline = time.monotonic() + 120

        def run(index: int) -> None:
            try:
                while time.monotonic() < deadline:
                    done = dispatchers[index].run_once()
                    claimed[index] += done
                    if done == 0 and undelivered() == 0:
                        return
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for db in engines:
            db.dispose()
        received = Counter(r.event_id for r in sink.received)
    world.close()

    assert failures == []
    assert undelivered() == 0
    assert set(received) >= set(events)  # none missing ...
    assert {received[event_id] for event_id in events} == {1}  # ... and none sent twice
    assert claimed[0] > 0 and claimed[1] > 0  # both dispatchers really shared the work
    with container.db.read() as session:
        numbers = Counter(
            session.scalars(
                select(WebhookAttempt.number).where(WebhookAttempt.endpoint_id == endpoint_id)
            )
        )
    assert numbers == {1: EVENTS}  # one attempt per delivery, recorded once
