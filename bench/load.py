"""The load driver: asyncio + aiohttp, closed loop for the ceiling, open loop for fixed loads.

- `closed_loop` keeps `concurrency` requests in flight for `seconds` and gives the most the
  stack sustains (its throughput is the "max" the fixed loads are fractions of).
- `open_loop` starts requests on a fixed schedule (`rate` per second), whether or not earlier
  ones have finished, and measures each latency from its *scheduled* start, so a stall is
  charged to every request it delays (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

# One request of a scenario: given the client and a sequence number, returns the HTTP status.
Operation = Callable[[aiohttp.ClientSession, int], Awaitable[int]]
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


@dataclass
class Samples:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) - self.ok

    def summary(self) -> dict[str, Any]:
        return {
            "duration_s": round(self.seconds, 2),
            "completed": sum(self.statuses.values()),
            "ok": self.ok,
            "errors": self.errors,
            "statuses": dict(sorted(self.statuses.items())),
            "throughput_ops_s": round(self.ok / self.seconds, 1) if self.seconds else 0.0,
            "latency_ms": latency_summary(self.latencies),
        }


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def latency_summary(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    ordered = sorted(latencies)
    ms = 1000.0
    return {
        "p50": round(percentile(ordered, 0.50) * ms, 2),
        "p95": round(percentile(ordered, 0.95) * ms, 2),
        "p99": round(percentile(ordered, 0.99) * ms, 2),
        "mean": round(sum(ordered) / len(ordered) * ms, 2),
        "max": round(ordered[-1] * ms, 2),
    }


def client(
    base_url: str, connections: int, headers: dict[str, str] | None = None
) -> aiohttp.ClientSession:
    """Keep-alive connections, at most `connections` of them, 30 s per request."""
    return aiohttp.ClientSession(
        base_url=base_url,
        headers=headers or {},
        timeout=aiohttp.ClientTimeout(total=30.0),
        connector=aiohttp.TCPConnector(limit=connections),
    )


async def _one(
    operation: Operation,
    http: aiohttp.ClientSession,
    sequence: int,
    started: float,
    samples: Samples,
) -> None:
    try:
        status = await operation(http, sequence)
    except TRANSPORT_ERRORS as exc:
        samples.statuses[type(exc).__name__] += 1
        return
    samples.statuses[str(status)] += 1
    if status < 400:
        samples.latencies.append(time.perf_counter() - started)


class Sequence:
    """Request numbers unique across all phases of a scenario (references, keys)."""

    def __init__(self) -> None:
        self.next = 0

    def take(self) -> int:
        self.next += 1
        return self.next


async def closed_loop(
    operation: Operation,
    http: aiohttp.ClientSession,
    concurrency: int,
    seconds: float,
    numbers: Sequence,
) -> Samples:
    samples = Samples()
    deadline = time.perf_counter() + seconds

    async def user() -> None:
        while time.perf_counter() < deadline:
            await _one(operation, http, numbers.take(), time.perf_counter(), samples)

    begun = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    samples.seconds = time.perf_counter() - begun
    return samples


async def open_loop(
    operation: Operation,
    http: aiohttp.ClientSession,
    rate: float,
    seconds: float,
    numbers: Sequence,
) -> Samples:
    samples = Samples()
    total = max(1, int(rate * seconds))
    interval = 1.0 / rate
    begun = time.perf_counter()
    tasks = []
    for index in range(total):
        scheduled = begun + index * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(operation, http, numbers.take(), scheduled, samples)))
    await asyncio.gather(*tasks)
    samples.seconds = time.perf_counter() - begun
    return samples
