"""Idempotency-Key records: one winner under concurrency, replay, mismatch, in-flight, takeover."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from gateway.domain.errors import Conflict, Unprocessable
from gateway.store.idempotency import IdempotencyKeys, IdempotencyRequest


@pytest.fixture
def keys(container):  # type: ignore[no-untyped-def]
    return IdempotencyKeys(
        container.db,
        container.clock,
        ttl=timedelta(hours=24),
        lock=timedelta(seconds=60),
        wait_seconds=0.3,
    )


@pytest.fixture(scope="module")
def partner_id(make_partner) -> str:  # type: ignore[no-untyped-def]
    return make_partner().id  # type: ignore[no-any-return]


def _request(
    partner_id: str, fingerprint: str = "a" * 64, operation: str = "op"
) -> IdempotencyRequest:
    return IdempotencyRequest(partner_id, str(uuid.uuid4()), operation, fingerprint)


def test_first_use_runs_and_a_retry_replays(keys, partner_id) -> None:  # type: ignore[no-untyped-def]
    request = _request(partner_id)
    assert keys.begin(request).kind == "new"
    keys.complete(request, 201, {"id": "tr_1"})
    replay = keys.begin(request)
    assert (replay.kind, replay.status, replay.body) == ("replay", 201, {"id": "tr_1"})


def test_another_payload_or_operation_under_the_key_is_422(keys, partner_id) -> None:  # type: ignore[no-untyped-def]
    request = _request(partner_id)
    keys.begin(request)
    keys.complete(request, 201, {})
    for other in (
        IdempotencyRequest(partner_id, request.key, "op", "b" * 64),
        IdempotencyRequest(partner_id, request.key, "other-op", "a" * 64),
    ):
        with pytest.raises(Unprocessable) as caught:
            keys.begin(other)
        assert caught.value.code == "idempotency_key_reused"


def test_keys_are_scoped_per_partner(keys, partner_id, make_partner) -> None:  # type: ignore[no-untyped-def]
    request = _request(partner_id)
    keys.begin(request)
    other = IdempotencyRequest(make_partner().id, request.key, "op", "b" * 64)
    assert keys.begin(other).kind == "new"


def test_in_flight_waits_then_409(keys, partner_id) -> None:  # type: ignore[no-untyped-def]
    request = _request(partner_id)
    keys.begin(request)
    with pytest.raises(Conflict) as caught:
        keys.begin(request)
    assert caught.value.code == "idempotency_key_in_flight"
    assert caught.value.headers["Retry-After"] == "1"


def test_a_waiting_retry_gets_the_answer_once_the_first_completes(container, partner_id) -> None:  # type: ignore[no-untyped-def]
    keys = IdempotencyKeys(
        container.db,
        container.clock,
        ttl=timedelta(hours=24),
        lock=timedelta(seconds=60),
        wait_seconds=5,
    )
    request = _request(partner_id)
    keys.begin(request)
    timer = threading.Timer(0.2, keys.complete, (request, 200, {"done": True}))
    timer.start()
    claim = keys.begin(request)
    timer.join()
    assert (claim.kind, claim.body) == ("replay", {"done": True})


def test_a_dead_request_is_taken_over_or_resumed(keys, partner_id, clock) -> None:  # type: ignore[no-untyped-def]
    bare, attached = _request(partner_id), _request(partner_id)
    keys.begin(bare)
    keys.begin(attached)
    with keys.db.transaction() as session:
        keys.attach(session, attached, "transfer", "tr_123")
    clock.advance(timedelta(seconds=61))
    try:
        assert keys.begin(bare).kind == "new"
        resumed = keys.begin(attached)
    finally:
        clock.advance(timedelta(seconds=-61))
    assert (resumed.kind, resumed.resource_type, resumed.resource_id) == (
        "resume",
        "transfer",
        "tr_123",
    )


def test_release_lets_the_client_retry(keys, partner_id) -> None:  # type: ignore[no-untyped-def]
    request = _request(partner_id)
    keys.begin(request)
    keys.release(request)
    assert keys.begin(request).kind == "new"


def test_expired_keys_start_afresh_and_are_purged(keys, partner_id, clock) -> None:  # type: ignore[no-untyped-def]
    request = _request(partner_id)
    keys.begin(request)
    keys.complete(request, 200, {"old": True})
    clock.advance(timedelta(hours=25))
    try:
        assert keys.purge_expired() >= 1
        assert keys.begin(IdempotencyRequest(partner_id, request.key, "op", "c" * 64)).kind == "new"
    finally:
        clock.advance(timedelta(hours=-25))


def test_concurrent_first_uses_have_exactly_one_winner(container, partner_id) -> None:  # type: ignore[no-untyped-def]
    keys = IdempotencyKeys(
        container.db,
        container.clock,
        ttl=timedelta(hours=24),
        lock=timedelta(seconds=60),
        wait_seconds=10,
    )
    request = _request(partner_id)
    barrier = threading.Barrier(20)

    def attempt() -> str:
        barrier.wait()
        claim = keys.begin(request)
        if claim.kind == "new":
            keys.complete(request, 201, {"winner": True})
        return claim.kind

    with ThreadPoolExecutor(max_workers=20) as pool:
        kinds = list(pool.map(lambda _: attempt(), range(20)))
    assert kinds.count("new") == 1
    assert kinds.count("replay") == 19


def test_complete_in_a_transaction_commits_or_rolls_back_with_it(keys, partner_id) -> None:  # type: ignore[no-untyped-def]
    rolled_back, committed = _request(partner_id), _request(partner_id)
    for request in (rolled_back, committed):
        keys.begin(request)

    def failing_outcome() -> None:
        with keys.db.transaction() as session:
            keys.complete(rolled_back, 201, {"id": "tr_1"}, session=session)
            raise RuntimeError("the outcome transaction failed")

    with pytest.raises(RuntimeError):
        failing_outcome()
    with keys.db.transaction() as session:
        keys.complete(committed, 201, {"id": "tr_2"}, session=session)
    with pytest.raises(Conflict):  # still in flight: nothing was stored
        keys.begin(rolled_back)
    replay = keys.begin(committed)
    assert (replay.kind, replay.status, replay.body) == ("replay", 201, {"id": "tr_2"})


def test_attach_needs_a_claimed_key(keys, partner_id) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AssertionError), keys.db.transaction() as session:
        keys.attach(session, _request(partner_id), "transfer", "tr_404")
