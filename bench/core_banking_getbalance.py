"""One GetBalance round trip: SOAP adapter (zeep) -> simulator over loopback HTTP -> back.

Measures what a gateway request pays per core-banking read: building and validating the
envelope, a pooled keep-alive HTTP exchange, the simulator's XSD validation and SQLite ledger
read, and zeep's strict parsing. Both ends share this process (and its GIL), as in the
embedded setup, so the figure is a floor for the adapter's overhead, not the core's speed.

    .venv/bin/python -m bench.core_banking_getbalance [--requests 3000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from bench.machine import describe

DESCRIPTION = "GetBalance round trip, zeep adapter -> simulator over loopback"
RESULT = Path(__file__).resolve().parent / "results" / "core_banking_getbalance.json"
ACCOUNT = "6222020000000001"


def _percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def run(requests: int, warmup: int, threads: int) -> dict[str, Any]:
    from adapters.core_banking.simulator import CoreBankingSimulator
    from adapters.core_banking.soap import SoapCoreBanking
    from gateway.observability.logging import configure_logging

    configure_logging("WARNING", "json")  # a log line per call would measure the logger
    simulator = CoreBankingSimulator(":memory:")
    server = simulator.serve("127.0.0.1", 0)
    started = time.perf_counter()
    core = SoapCoreBanking(server.soap_url, timeout=10.0, pool_size=max(threads, 1))
    first_client_ms = (time.perf_counter() - started) * 1000
    try:
        for _ in range(warmup):
            core.get_balance(ACCOUNT)
        latencies: list[float] = []
        lock = threading.Lock()
        per_thread = requests // threads

        def worker() -> None:
            mine = []
            for _ in range(per_thread):
                began = time.perf_counter_ns()
                core.get_balance(ACCOUNT)
                mine.append((time.perf_counter_ns() - began) / 1e6)
            with lock:
                latencies.extend(mine)

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        wall = time.perf_counter()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - wall
    finally:
        core.close()
        server.shutdown()
    latencies.sort()
    return {
        "scenario": "core_banking_getbalance",
        "description": DESCRIPTION,
        "requests": len(latencies),
        "warmup_requests": warmup,
        "client_threads": threads,
        "ops_per_second": round(len(latencies) / elapsed, 1),
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50), 3),
            "p95": round(_percentile(latencies, 0.95), 3),
            "p99": round(_percentile(latencies, 0.99), 3),
            "mean": round(statistics.fmean(latencies), 3),
            "max": round(latencies[-1], 3),
        },
        "adapter_construction_ms": round(first_client_ms, 2),
        "notes": "client and simulator in one process over 127.0.0.1 (keep-alive); strict zeep, "
        "XSD-validated requests at the simulator, SQLite in-memory ledger",
        "machine": describe("zeep", "lxml", "requests", "werkzeug", "flask"),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.core_banking_getbalance")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    result = run(args.requests, args.warmup, max(1, args.threads))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    latency = result["latency_ms"]
    print(
        f"GetBalance: {result['ops_per_second']} ops/s, p50 {latency['p50']} ms, "
        f"p95 {latency['p95']} ms, p99 {latency['p99']} ms "
        f"({result['requests']} requests, {result['client_threads']} thread(s)) -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
