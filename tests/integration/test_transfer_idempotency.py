"""The Idempotency-Key protocol of POST /v1/transfers, seen through the endpoint: a missing key,
and a retry while the first request is still at the core."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from tests.flows import post_transfer


def test_a_transfer_without_an_idempotency_key_is_a_400(client, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    body = {
        "link_id": s.link["id"],
        "direction": "debit",
        "amount": {"value": "10.00", "currency": "CNY"},
    }
    response = client.post("/v1/transfers", json=body, headers=s.partner.auth)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert problem["errors"] == [{"header": "Idempotency-Key", "detail": "is required"}]
    listed = client.get(f"/v1/transfers?link_id={s.link['id']}", headers=s.partner.auth).json()
    assert listed["data"] == []  # nothing was created
    assert core.available(s.account) == "10000.00"


def test_the_same_key_while_the_first_request_is_at_the_core_is_a_409(
    client, container, core, core_simulator, funded, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    # Retries wait this long for the first request before giving up with 409 (5 s in tests).
    monkeypatch.setattr(container.idempotency, "wait_seconds", 0.2)
    key = str(uuid.uuid4())
    before = core_simulator.request_count("PostTransfer")
    core_simulator.inject("PostTransfer", "latency", seconds=2.0, times=1)
    first: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: first.update(response=post_transfer(client, s, "10.00", key=key))
    )
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while core_simulator.request_count("PostTransfer") == before:  # the first is at the core
            assert time.monotonic() < deadline, "the first request never reached the core"
            time.sleep(0.02)
        retry = post_transfer(client, s, "10.00", key=key)
        other_payload = post_transfer(client, s, "11.00", key=key)
    finally:
        worker.join()
    assert retry.status_code == 409, retry.text
    assert retry.json()["code"] == "idempotency_key_in_flight"
    assert retry.headers["retry-after"] == "1"
    assert other_payload.status_code == 422
    assert other_payload.json()["code"] == "idempotency_key_reused"
    assert first["response"].status_code == 201, first["response"].text
    transfer = first["response"].json()
    assert transfer["status"] == "succeeded"
    # Once the first has finished, the same retry replays its answer; the money moved once.
    replay = post_transfer(client, s, "10.00", key=key)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == transfer
    assert core.postings(transfer["id"]) == 1
    assert core.available(s.account) == "9990.00"
