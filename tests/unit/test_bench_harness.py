"""The benchmark's own arithmetic and scheduling (bench/load.py, bench/gateway_load.py).

No timing is asserted about the gateway: these check that the driver counts, paces and
summarizes correctly, so the published figures mean what bench/README.md says.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import aiohttp
import pytest

from bench import load
from bench.gateway_load import _frame_name, _ratios, summarize_profile, sustained
from bench.stack import cpu_seconds, process_tree


def test_percentile_is_nearest_rank() -> None:
    ordered = [float(value) for value in range(1, 101)]
    assert load.percentile(ordered, 0.50) == 50.0
    assert load.percentile(ordered, 0.99) == 99.0
    assert load.percentile(ordered, 1.0) == 100.0
    assert load.percentile([7.0], 0.99) == 7.0
    assert math.isnan(load.percentile([], 0.5))


def test_latency_summary_in_milliseconds() -> None:
    summary = load.latency_summary([0.010, 0.020, 0.030, 0.040])
    assert summary == {"p50": 20.0, "p95": 40.0, "p99": 40.0, "mean": 25.0, "max": 40.0}
    assert load.latency_summary([])["p99"] is None


def test_only_successes_count_toward_throughput_and_latency() -> None:
    samples = load.Samples(seconds=2.0, latencies=[0.01, 0.02])
    samples.statuses.update({"200": 2, "500": 1, "ClientConnectorError": 1})
    summary = samples.summary()
    assert summary["ok"] == 2
    assert summary["errors"] == 2
    assert summary["completed"] == 4
    assert summary["throughput_ops_s"] == 1.0


def _operation(statuses: list[int], delay: float = 0.0) -> Any:
    seen: list[int] = []

    async def operation(http: Any, number: int) -> int:
        seen.append(number)
        if delay:
            await asyncio.sleep(delay)
        return statuses[number % len(statuses)]

    operation.seen = seen  # type: ignore[attr-defined]
    return operation


def test_closed_loop_keeps_numbers_unique_across_phases() -> None:
    operation = _operation([200])
    numbers = load.Sequence()
    first = asyncio.run(load.closed_loop(operation, None, 4, 0.05, numbers))  # type: ignore[arg-type]
    second = asyncio.run(load.closed_loop(operation, None, 4, 0.05, numbers))  # type: ignore[arg-type]
    assert first.ok > 0 and second.ok > 0
    assert len(operation.seen) == len(set(operation.seen)) == first.ok + second.ok


def test_closed_loop_counts_failures_and_transport_errors() -> None:
    async def flaky(http: Any, number: int) -> int:
        if number % 3 == 0:
            raise aiohttp.ClientConnectionError("reset")
        return 200 if number % 3 == 1 else 503

    samples = asyncio.run(load.closed_loop(flaky, None, 1, 0.05, load.Sequence()))  # type: ignore[arg-type]
    assert samples.statuses["200"] > 0
    assert samples.statuses["503"] > 0
    assert samples.statuses["ClientConnectionError"] > 0
    assert samples.ok == samples.statuses["200"]


def test_open_loop_offers_the_asked_rate_and_charges_queueing_to_latency() -> None:
    # 40 requests over 0.2 s, each taking 50 ms: all start on schedule (none waits for another).
    operation = _operation([201], delay=0.05)
    begun = time.perf_counter()
    samples = asyncio.run(load.open_loop(operation, None, 200.0, 0.2, load.Sequence()))  # type: ignore[arg-type]
    elapsed = time.perf_counter() - begun
    assert sum(samples.statuses.values()) == 40
    assert elapsed < 0.2 + 0.05 + 0.5  # schedule + one request + slack: requests overlapped
    assert min(samples.latencies) >= 0.05


def test_open_loop_latency_counts_from_the_scheduled_start() -> None:
    # One slot at a time (a lock) while the schedule asks for more: later requests wait, and
    # their latency includes the wait (no coordinated omission).
    lock = asyncio.Lock()

    async def serial(http: Any, number: int) -> int:
        async with lock:
            await asyncio.sleep(0.02)
        return 200

    samples = asyncio.run(load.open_loop(serial, None, 200.0, 0.1, load.Sequence()))  # type: ignore[arg-type]
    assert samples.ok == 20
    assert max(samples.latencies) >= 0.02 * 20 - 0.1  # the last waited for the 19 before it


def test_ratios_against_the_floors() -> None:
    results: dict[str, Any] = {
        "floor": {"max": {"throughput_ops_s": 400.0}},
        "core_floor": {"max": {"throughput_ops_s": 800.0}},
        "transfers_debit": {"max": {"throughput_ops_s": 200.0}},
    }
    _ratios(results)
    assert results["transfers_debit"]["ratios"] == {"to_floor": 0.5, "to_core_floor": 0.25}


def test_ratios_without_a_floor_are_none() -> None:
    results: dict[str, Any] = {"transfers_credit": {"max": {"throughput_ops_s": 10.0}}}
    _ratios(results)
    assert results["transfers_credit"]["ratios"] == {"to_floor": None, "to_core_floor": None}


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            "get (sqlalchemy/orm/session.py:3600)",
            ("get (sqlalchemy/orm/session.py)", "sqlalchemy"),
        ),
        (
            "create (/srv/app/.venv/lib/python3.11/site-packages/zeep/client.py:10)",
            ("create (zeep/client.py)", "zeep"),
        ),
        (
            "create (/work/main/gateway/services/transfers.py:120)",
            ("create (gateway/services/transfers.py)", "gateway"),
        ),
        ("<module>", ("<module>", "?")),
    ],
)
def test_profile_frames_are_named_by_package(frame: str, expected: tuple[str, str]) -> None:
    assert _frame_name(frame) == expected


def test_profile_summary_shares() -> None:
    stacks = {
        "run (/x/gateway/app.py:1);get (sqlalchemy/orm/session.py:2)": 3,
        "run (/x/gateway/app.py:1);dumps (json/__init__.py:3)": 1,
    }
    text = summarize_profile(stacks, rate=100, seconds=10)
    assert "   75.0 %  sqlalchemy" in text
    assert "   25.0 %  json" in text
    assert "  100.0 %  run (gateway/app.py)" in text


def test_cpu_of_this_process_tree_is_read_from_proc() -> None:
    import os

    pids = process_tree(os.getpid())
    assert pids[0] == os.getpid()
    before = cpu_seconds(pids)
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert cpu_seconds(pids) > before


def _phase(offered: float, p99: float | None, errors: int = 0) -> dict[str, Any]:
    return {"offered_ops_s": offered, "errors": errors, "latency_ms": {"p99": p99}}


def test_sustained_is_the_highest_clean_load_under_the_p99_bound() -> None:
    result = {"fixed_loads": [_phase(10, 40.0), _phase(20, 90.0), _phase(32, 400.0)]}
    assert sustained(result) == "20"
    result = {"fixed_loads": [_phase(10, 40.0), _phase(20, 50.0, errors=1), _phase(32, 400.0)]}
    assert sustained(result) == "10"
    assert sustained({"fixed_loads": [_phase(10, 150.0), _phase(20, None)]}) == "none"
