"""The gateway under load, every part its own process (see bench/README.md).

`python -m bench gateway_load [--db postgresql|sqlite] [--workers N] [--only a,b]`

For each scenario: a warm-up, the most the stack sustains (closed loop, `--concurrency`
requests in flight), then fixed offered loads at 25 %, 50 % and 80 % of that (open loop,
latency from each request's scheduled start). CPU seconds per operation are read from /proc for
the gateway (gunicorn master + workers), the core-banking simulator, PostgreSQL and this
driver. Results: bench/results/<scenario>.json and bench/results/SUMMARY.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench import load
from bench.machine import describe
from bench.stack import (
    Options,
    Partner,
    Stack,
    cpu_seconds,
    cpu_times,
    database_counters,
    postgres_pids,
    running,
)

DESCRIPTION = (
    "gateway stack under load (separate processes): floor, debit/credit transfers, links, "
    "GSMA payouts, camt.054, webhooks"
)
RESULTS = Path(__file__).parent / "results"
PROFILED = ("floor", "transfers_debit")
FRACTIONS = (0.25, 0.5, 0.8)
ORDER = (
    "floor",
    "core_floor",
    "transfers_debit",
    "transfers_credit",
    "links_create",
    "payouts_gsma",
    "camt054_ingest",
    "webhooks_dispatch",
)


@dataclass
class Scenario:
    name: str
    description: str
    unit: str
    operation: load.Operation
    base_url: str
    headers: dict[str, str]


class CpuMeter:
    """CPU seconds spent by each part of the stack between `start()` and `read()`, and on
    PostgreSQL the database's transactions and row operations (round trips, roughly)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.before: dict[str, float] = {}
        self.database_before: dict[str, int] = {}

    def _now(self) -> dict[str, float]:
        driver = os.times()
        gateway_user, gateway_system = cpu_times(self.stack.pids("gateway"))
        values = {
            "gateway": gateway_user + gateway_system,
            "gateway_kernel": gateway_system,
            "core_banking_simulator": cpu_seconds(self.stack.pids("core-banking")),
            "gsma_sandbox": cpu_seconds(self.stack.pids("gsma-mm")),
            "worker": cpu_seconds(self.stack.pids("worker")),
            "driver": driver.user + driver.system,
        }
        if self.stack.options.db == "postgresql":
            values["postgresql"] = cpu_seconds(postgres_pids())
        return values

    def _database(self) -> dict[str, int]:
        if not self.stack.database:
            return {}
        return database_counters(self.stack.database)

    def start(self) -> None:
        self.database_before = self._database()
        self.before = self._now()

    def read(self, operations: int) -> dict[str, Any]:
        after = self._now()
        used = {name: after[name] - self.before.get(name, 0.0) for name in after}
        result: dict[str, Any] = {
            "cpu_seconds": {name: round(value, 2) for name, value in used.items()},
            "cpu_ms_per_op": {
                name: round(value / operations * 1000, 3) if operations else None
                for name, value in used.items()
                if value > 0
            },
        }
        if self.database_before and operations:
            # PostgreSQL flushes a backend's statistics at most once a second.
            time.sleep(1.2)
            database = self._database()
            result["postgresql_per_op"] = {
                name: round((database[name] - self.database_before[name]) / operations, 2)
                for name in database
            }
        return result


async def measure(scenario: Scenario, stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    numbers = load.Sequence()
    meter = CpuMeter(stack)
    connections = max(args.concurrency, 64)
    async with load.client(scenario.base_url, connections, scenario.headers) as http:
        await load.closed_loop(scenario.operation, http, args.concurrency, args.warmup, numbers)
        meter.start()
        ceiling = await load.closed_loop(
            scenario.operation, http, args.concurrency, args.seconds, numbers
        )
        peak = {"concurrency": args.concurrency, **ceiling.summary(), **meter.read(ceiling.ok)}
        print(f"  {scenario.name}: max {peak['throughput_ops_s']} {scenario.unit}/s", flush=True)
        fixed = []
        for fraction in FRACTIONS:
            rate = max(1.0, ceiling.ok / ceiling.seconds * fraction)
            await asyncio.sleep(1.0)
            meter.start()
            samples = await load.open_loop(scenario.operation, http, rate, args.seconds, numbers)
            fixed.append(
                {
                    "fraction_of_max": fraction,
                    "offered_ops_s": round(rate, 1),
                    **samples.summary(),
                    **meter.read(samples.ok),
                }
            )
            latency = samples.summary()["latency_ms"]
            print(
                f"    at {fraction:.0%} ({rate:.0f}/s): p50 {latency['p50']} ms, "
                f"p99 {latency['p99']} ms, errors {samples.errors}",
                flush=True,
            )
    return {"max": peak, "fixed_loads": fixed}


# --- scenarios ---------------------------------------------------------------------------------


async def _send(http: aiohttp.ClientSession, method: str, path: str, **options: Any) -> int:
    async with http.request(method, path, **options) as response:
        await response.read()
        return response.status


def _json_post(path: str, body: Callable[[int], dict[str, Any]], *expect: int) -> load.Operation:
    """POST a fresh JSON body with a fresh Idempotency-Key; `expect`ed statuses count as ok."""

    async def operation(http: aiohttp.ClientSession, number: int) -> int:
        status = await _send(
            http, "POST", path, json=body(number), headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        return 200 if status in expect else status

    return operation


def floor(stack: Stack, wallet: Partner, _: dict[str, Any]) -> Scenario:
    async def me(http: aiohttp.ClientSession, number: int) -> int:
        return await _send(http, "GET", "/v1/partners/me")

    return Scenario(
        "floor",
        "GET /v1/partners/me: the trivial authenticated endpoint on the same server stack "
        "(token check, partner load, rate limit, JSON)",
        "requests",
        me,
        stack.gateway_url,
        wallet.auth,
    )


def core_floor(stack: Stack, wallet: Partner, state: dict[str, Any]) -> Scenario:
    """The simulator alone: PostTransfer envelopes rendered once by the gateway's own adapter."""
    import zeep

    from adapters.core_banking.soap import SoapCoreBanking
    from gateway.domain.money import Money

    captured: dict[str, Any] = {}

    class Capture(zeep.Plugin):
        def egress(
            self, envelope: Any, http_headers: dict[str, str], operation: Any, options: Any
        ) -> Any:
            from lxml import etree

            captured["body"] = etree.tostring(envelope).decode()
            captured["headers"] = dict(http_headers)
            return envelope, http_headers

        def ingress(self, envelope: Any, http_headers: dict[str, str], operation: Any) -> Any:
            return envelope, http_headers

    customer = stack.open_account("BENCH Core floor")
    marker = f"BENCHREF{uuid.uuid4().hex[:12].upper()}"
    adapter = SoapCoreBanking(f"{stack.core_url}/core-banking", plugins=[Capture()])
    try:
        adapter.post_transfer(
            external_reference=marker,
            debit_account=customer,
            credit_account=wallet.settlement_account or "",
            amount=Money.from_decimal(Decimal("1.00"), "CNY"),
            description="bench",
        )
    finally:
        adapter.close()
    template, headers = captured["body"], captured["headers"]
    prefix = uuid.uuid4().hex[:8].upper()

    async def post_transfer(http: aiohttp.ClientSession, number: int) -> int:
        body = template.replace(marker, f"BENCH{prefix}{number:012d}")
        return await _send(http, "POST", "/core-banking", data=body.encode(), headers=headers)

    return Scenario(
        "core_floor",
        "the core-banking simulator alone: SOAP PostTransfer (XSD-validated, ledger posting), "
        "envelopes pre-rendered, no gateway",
        "postings",
        post_transfer,
        stack.core_url,
        {},
    )


def transfers(direction: str) -> Callable[[Stack, Partner, dict[str, Any]], Scenario]:
    def make(stack: Stack, wallet: Partner, state: dict[str, Any]) -> Scenario:
        links: list[str] = state["links"]

        def body(number: int) -> dict[str, Any]:
            return {
                "link_id": links[number % len(links)],
                "direction": direction,
                "amount": {"value": "1.00", "currency": "CNY"},
                "description": f"bench {direction} {number}",
            }

        what = "wallet top-up" if direction == "debit" else "wallet withdrawal"
        return Scenario(
            f"transfers_{direction}",
            f"POST /v1/transfers direction={direction} ({what}, automatic capture), "
            f"round robin over {len(links)} active links: auth, idempotency, consent, risk, "
            "one core posting, outbox event",
            "transfers",
            _json_post("/v1/transfers", body, 201),
            stack.gateway_url,
            wallet.auth,
        )

    return make


def links_create(stack: Stack, wallet: Partner, state: dict[str, Any]) -> Scenario:
    accounts: list[tuple[str, str]] = state["spare_accounts"]

    def body(number: int) -> dict[str, Any]:
        account, holder = accounts[number % len(accounts)]
        return stack.link_body(account, holder)

    return Scenario(
        "links_create",
        "POST /v1/links: core GetAccount, name check, consent, vault encryption + blind "
        "index, OTP hashed and sent through the sandbox notifier",
        "links",
        _json_post("/v1/links", body, 201),
        stack.gateway_url,
        wallet.auth,
    )


def payouts_gsma(stack: Stack, wallet: Partner, state: dict[str, Any]) -> Scenario:
    bank_app: Partner = state["bank_app"]
    source: str = state["kes_account"]

    def body(number: int) -> dict[str, Any]:
        return {
            "source_account": source,
            "provider": "gsma_mm",
            "amount": {"value": "1.00", "currency": "KES"},
            "recipient": {"type": "msisdn", "value": "+254712345601"},
            "description": f"bench payout {number}",
        }

    return Scenario(
        "payouts_gsma",
        "POST /v1/payouts to the GSMA Mobile Money sandbox: core PlaceHold, provider "
        "disbursement, callback + status fetch, capture",
        "payouts",
        _json_post("/v1/payouts", body, 201, 202),
        stack.gateway_url,
        bank_app.auth,
    )


def camt054_ingest(stack: Stack, wallet: Partner, state: dict[str, Any]) -> Scenario:
    core_partner: Partner = state["core_partner"]
    messages: list[bytes] = state["camt054"]

    async def ingest(http: aiohttp.ClientSession, number: int) -> int:
        document = messages[number % len(messages)].replace(
            b"BENCHMSGID", f"BENCH{number:010d}".encode()
        )
        headers = {"Content-Type": "application/xml"}
        return await _send(http, "POST", "/core/v1/iso20022", data=document, headers=headers)

    return Scenario(
        "camt054_ingest",
        f"POST /core/v1/iso20022 camt.054.001.08 of {state['camt_entries']} booked entries "
        "each: streamed XSD validation, raw audit copy, matching to transfers",
        "messages",
        ingest,
        stack.gateway_url,
        core_partner.auth,
    )


SCENARIOS: dict[str, Callable[[Stack, Partner, dict[str, Any]], Scenario]] = {
    "floor": floor,
    "core_floor": core_floor,
    "transfers_debit": transfers("debit"),
    "transfers_credit": transfers("credit"),
    "links_create": links_create,
    "payouts_gsma": payouts_gsma,
    "camt054_ingest": camt054_ingest,
}


# --- set-up per scenario ---------------------------------------------------------------------


def prepare(
    name: str, stack: Stack, wallet: Partner, state: dict[str, Any], args: argparse.Namespace
) -> None:
    if (
        name in ("transfers_debit", "transfers_credit", "webhooks_dispatch")
        and "links" not in state
    ):
        state["links"] = stack.active_links(wallet, args.links)
    if name == "links_create":
        state["spare_accounts"] = asyncio.run(_open_accounts(stack, args.spare_accounts))
    if name == "payouts_gsma":
        state["bank_app"] = stack.partner("Bench Bank App", "bank_channel", None)
        state["kes_account"] = stack.open_account("BENCH Payout source", "KES")
    if name == "camt054_ingest":
        state["core_partner"] = stack.partner("Bench Core", "core", None)
        state["camt_entries"] = args.camt_entries
        state["camt054"] = _camt_messages(stack, wallet, args.camt_entries)


async def _open_accounts(stack: Stack, count: int) -> list[tuple[str, str]]:
    opened: list[tuple[str, str]] = []
    async with load.client(stack.core_url, 16) as http:

        async def open_one(index: int) -> None:
            holder = f"BENCH Linker {index}"
            body = {
                "name": holder,
                "currency": "CNY",
                "balance": "1000.00",
                "registered_mobile": f"+86137{index:08d}",
            }
            async with http.post("/simulator/accounts", json=body) as response:
                response.raise_for_status()
                opened.append((str((await response.json())["number"]), holder))

        for start in range(0, count, 16):
            await asyncio.gather(*(open_one(i) for i in range(start, min(count, start + 16))))
    return opened


def _camt_messages(stack: Stack, wallet: Partner, per_message: int) -> list[bytes]:
    """camt.054 documents of the entries the core booked on the wallet's settlement account
    by the transfers of earlier scenarios (so matching does real work)."""
    from adapters.core_banking.simulator.camt import CamtEntry, iter_notification

    response = httpx.get(
        f"{stack.core_url}/simulator/postings",
        params={"account": wallet.settlement_account},
        timeout=60,
    )
    response.raise_for_status()
    rows = response.json()["data"]
    today = datetime.now(UTC).date()
    entries = [
        CamtEntry(
            entry_id=index,
            account=wallet.settlement_account or "",
            amount=Decimal(row["amount"]),
            currency=row["currency"],
            credit_debit="CRDT" if row["credit_account"] == wallet.settlement_account else "DBIT",
            booking_date=today,
            value_date=today,
            core_reference=row["core_reference"],
            reference=row["external_reference"],
        )
        for index, row in enumerate(rows, start=1)
        if row["status"] == "BOOKED"
    ]
    if len(entries) < per_message:
        raise RuntimeError("camt054_ingest needs the entries of an earlier transfers scenario")
    created = datetime.now(UTC)
    return [
        b"".join(
            iter_notification(
                entries[start : start + per_message], message_id="BENCHMSGID", created=created
            )
        )
        for start in range(0, len(entries) - per_message + 1, per_message)
    ]


# --- webhook dispatch ------------------------------------------------------------------------


async def _sink_stats(stack: Stack) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        return dict((await http.get(f"{stack.sink_url}/stats")).json())


async def _until_quiet(stack: Stack, quiet_seconds: float, give_up: float) -> dict[str, Any]:
    """Sink stats once nothing new has arrived for `quiet_seconds`."""
    deadline = time.monotonic() + give_up
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        stats = await _sink_stats(stack)
        count = len(stats["received"])
        if count != last:
            last, since = count, time.monotonic()
        elif count and time.monotonic() - since >= quiet_seconds:
            return stats
        await asyncio.sleep(0.5)
    return await _sink_stats(stack)


async def webhooks_dispatch(
    stack: Stack, wallet: Partner, state: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    """Delivery throughput draining a backlog, then event-to-delivery latency under load."""
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=wallet.auth) as http:
        created = await http.post(
            "/v1/webhook-endpoints",
            json={"url": f"{stack.sink_url}/hook", "event_types": ["transfer.*"]},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        created.raise_for_status()
        await http.delete(f"{stack.sink_url}/stats")
    debit = transfers("debit")(stack, wallet, state)
    numbers = load.Sequence()
    meter = CpuMeter(stack)
    async with load.client(stack.gateway_url, 64, wallet.auth) as http:
        # 1. A backlog made while no dispatcher runs (as after an outage of the workers).
        backlog = await load.closed_loop(
            debit.operation, http, args.concurrency, args.seconds, numbers
        )
        stack.start_worker()
        meter.start()
        drained = await _until_quiet(stack, quiet_seconds=5.0, give_up=600.0)
        arrivals = [arrived for arrived, _ in drained["received"]]
        deliveries = len(arrivals)
        # From the first delivery to the last: the worker's start-up is not dispatch.
        span = (max(arrivals) - min(arrivals)) if len(arrivals) > 1 else 0.0
        drain = {
            "transfers": backlog.ok,
            "deliveries": deliveries,
            "distinct_events": drained["distinct"],
            "duplicates": drained["duplicates"],
            "seconds": round(span, 2),
            "throughput_deliveries_s": round(deliveries / span, 1) if span else 0.0,
            **meter.read(deliveries),
        }
        print(
            f"  webhooks_dispatch: drained {deliveries} deliveries at "
            f"{drain['throughput_deliveries_s']}/s",
            flush=True,
        )
        # 2. Live: transfers at a steady rate with the dispatcher running.
        rate = args.webhook_rate
        phase_start = time.time()
        meter.start()
        live = await load.open_loop(debit.operation, http, rate, args.seconds, numbers)
        stats = await _until_quiet(stack, quiet_seconds=5.0, give_up=300.0)
        lags = [
            arrived - created_at
            for arrived, created_at in stats["received"]
            if created_at is not None and created_at >= phase_start - 1.0
        ]
        lived = {
            "offered_transfers_s": rate,
            "transfers": live.ok,
            "transfer_errors": live.errors,
            "deliveries": len(lags),
            "event_to_delivery_ms": load.latency_summary(lags),
            **meter.read(len(lags)),
        }
        print(
            f"    live at {rate}/s transfers: delivery lag p50 "
            f"{lived['event_to_delivery_ms']['p50']} ms, p99 "
            f"{lived['event_to_delivery_ms']['p99']} ms",
            flush=True,
        )
    return {
        "description": "webhook deliveries (Standard Webhooks signed POSTs) by `wallet-gateway "
        "worker` to a local sink, for the transfer.* events of debit transfers: draining a "
        "backlog, then live with transfers at a steady rate",
        "unit": "deliveries",
        "drain": drain,
        "live": lived,
    }


# --- profile ---------------------------------------------------------------------------------


async def profile(scenario: Scenario, stack: Stack, rate: float, seconds: int) -> Path | None:
    """py-spy samples every gateway worker while the scenario runs at `rate`."""
    py_spy = shutil.which("py-spy") or str(Path(os.sys.executable).parent / "py-spy")  # type: ignore[attr-defined]
    if not Path(py_spy).exists():
        print("  (py-spy not installed: no profile)")
        return None
    master, *workers = stack.pids("gateway")
    targets = workers or [master]
    raw = [stack.workdir / f"profile-{pid}.txt" for pid in targets]
    recorders = [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(seconds),
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                str(path),
                "--gil",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, path in zip(targets, raw, strict=True)
    ]
    await asyncio.sleep(1.0)
    async with load.client(scenario.base_url, 64, scenario.headers) as http:
        await load.open_loop(scenario.operation, http, rate, seconds - 2, load.Sequence())
    for recorder in recorders:
        recorder.wait(timeout=60)
    stacks: dict[str, int] = {}
    for path in raw:
        if path.exists():
            for line in path.read_text().splitlines():
                frames, _, count = line.rpartition(" ")
                if frames and count.isdigit():
                    stacks[frames] = stacks.get(frames, 0) + int(count)
    if not stacks:
        return None
    output = RESULTS / f"profile_{scenario.name}.txt"
    output.write_text(summarize_profile(stacks, rate, seconds))
    return output


def _frame_name(frame: str) -> tuple[str, str]:
    """("function (pkg/module.py)", "pkg") from py-spy's "function (/path/pkg/module.py:line)"."""
    function, _, where = frame.rpartition(" (")
    if not function:
        return frame, "?"
    path = where.split(":")[0].split("site-packages/")[-1]
    for ours in ("gateway/", "adapters/"):
        if f"/{ours}" in path or path.startswith(ours):
            path = ours + path.split(ours, 1)[1]
    return f"{function} ({path})", path.split("/")[0].removesuffix(".py")


def summarize_profile(stacks: dict[str, int], rate: float, seconds: int) -> str:
    """Where the gateway's Python time goes: per package, per function of ours, and hot leaves.

    Inclusive counts a frame once per sample, whatever the recursion.
    """
    total = sum(stacks.values())
    inclusive: dict[str, int] = {}
    packages: dict[str, int] = {}
    own: dict[str, int] = {}
    own_packages: dict[str, int] = {}
    for frames, count in stacks.items():
        named = [_frame_name(frame) for frame in frames.split(";")]
        for name in {name for name, _ in named}:
            inclusive[name] = inclusive.get(name, 0) + count
        for package in {package for _, package in named}:
            packages[package] = packages.get(package, 0) + count
        leaf, leaf_package = named[-1]
        own[leaf] = own.get(leaf, 0) + count
        own_packages[leaf_package] = own_packages.get(leaf_package, 0) + count

    def table(title: str, counts: dict[str, int], limit: int, keep: Any = None) -> list[str]:
        rows = sorted(counts.items(), key=lambda item: -item[1])
        rows = [row for row in rows if keep is None or keep(row[0])][:limit]
        return ["", title, *(f"{count / total * 100:7.1f} %  {name}" for name, count in rows)]

    lines = [
        f"py-spy --gil, all gateway workers, {seconds} s at {rate:.0f} requests/s, {total} "
        "samples at 200 Hz: only the thread holding the GIL, i.e. Python CPU time "
        "(C code that releases the GIL, such as libpq waits, is not in it).",
    ]
    lines += table("by package, self (the leaf frame's package)", own_packages, 25)
    lines += table("by package, inclusive (any frame in the package)", packages, 25)
    ours = ("(gateway/", "(adapters/")
    lines += table(
        "our functions, inclusive", inclusive, 50, lambda name: any(o in name for o in ours)
    )
    lines += table("hottest leaves (self)", own, 40)
    return "\n".join(lines) + "\n"


# --- report ----------------------------------------------------------------------------------


def _ratios(results: dict[str, Any]) -> None:
    floor_max = results.get("floor", {}).get("max", {}).get("throughput_ops_s")
    core_max = results.get("core_floor", {}).get("max", {}).get("throughput_ops_s")
    for name in ("transfers_debit", "transfers_credit"):
        result = results.get(name)
        if not result:
            continue
        value = result["max"]["throughput_ops_s"]
        result["ratios"] = {
            "to_floor": round(value / floor_max, 3) if floor_max else None,
            "to_core_floor": round(value / core_max, 3) if core_max else None,
        }


def sustained(result: dict[str, Any], p99_ms: float = 100.0) -> str:
    """The highest fixed load served without errors and with p99 under `p99_ms`."""
    met = [
        phase["offered_ops_s"]
        for phase in result["fixed_loads"]
        if not phase["errors"] and (phase["latency_ms"]["p99"] or math.inf) < p99_ms
    ]
    return f"{max(met)}" if met else "none"


def _summary(results: dict[str, Any], config: dict[str, Any], machine: dict[str, Any]) -> str:
    lines = [
        "# Benchmark summary",
        "",
        f"Measured {machine['measured_at']} on {machine['cpu_count']} x {machine['cpu']}, "
        f"load before the run {machine['load_average_1m_5m_15m']}; database "
        f"{config['db']}, gateway `serve --{config['server']}` with {config['workers']} workers; "
        f"every part a separate process on the same machine, the driver included.",
        "",
        f"Reproduce: `{config['command']}`",
        "",
        "| scenario | max ops/s | sustained with p99 < 100 ms | at 80 %: offered/s | p50 ms | "
        "p95 ms | p99 ms | errors | gateway CPU ms/op |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        if "max" not in result:
            continue
        at80 = result["fixed_loads"][-1]
        latency = at80["latency_ms"]
        cpu = at80["cpu_ms_per_op"].get(
            "gateway", at80["cpu_ms_per_op"].get("core_banking_simulator")
        )
        lines.append(
            f"| {name} | {result['max']['throughput_ops_s']} | {sustained(result)} | "
            f"{at80['offered_ops_s']} | "
            f"{latency['p50']} | {latency['p95']} | {latency['p99']} | "
            f"{result['max']['errors'] + sum(f['errors'] for f in result['fixed_loads'])} | {cpu} |"
        )
    webhooks = results.get("webhooks_dispatch")
    if webhooks:
        lag = webhooks["live"]["event_to_delivery_ms"]
        lines += [
            "",
            f"Webhooks: a backlog of {webhooks['drain']['deliveries']} deliveries drained at "
            f"{webhooks['drain']['throughput_deliveries_s']}/s by one worker process; live at "
            f"{webhooks['live']['offered_transfers_s']} transfers/s, event-to-delivery p50 "
            f"{lag['p50']} ms, p99 {lag['p99']} ms.",
        ]
    debit = results.get("transfers_debit")
    if debit:
        at80 = debit["fixed_loads"][-1]
        ratios = debit.get("ratios", {})
        lines += [
            "",
            "Goal (PostgreSQL, this 2-core machine): ≥ 250 debit transfers/s, p99 < 100 ms at 80 % "
            "of that load, debit throughput ≥ 0.5 x the trivial-endpoint floor.",
            f"Reached: {debit['max']['throughput_ops_s']} debit transfers/s; p99 "
            f"{at80['latency_ms']['p99']} ms at {at80['offered_ops_s']}/s (80 %); ratio to the "
            f"floor {ratios.get('to_floor')}, to the simulator alone "
            f"{ratios.get('to_core_floor')}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench gateway_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--workers", type=int, default=2, help="gateway worker processes")
    parser.add_argument("--server", choices=["gunicorn", "uvicorn"], default="gunicorn")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(ORDER)}")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32, help="in flight, closed loop")
    parser.add_argument("--links", type=int, default=50, help="active links transfers use")
    parser.add_argument("--spare-accounts", type=int, default=6000, help="for links_create")
    parser.add_argument("--camt-entries", type=int, default=50, help="entries per camt.054")
    parser.add_argument("--webhook-rate", type=float, default=25.0, help="transfers/s, live")
    parser.add_argument(
        "--profile", type=int, default=0, help=f"py-spy {' and '.join(PROFILED)} for N s each"
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [name for name in (args.only.split(",") if args.only else ORDER) if name]
    unknown = set(names) - set(ORDER)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    machine = describe(
        "connexion", "flask", "uvicorn", "gunicorn", "SQLAlchemy", "psycopg", "zeep", "httpx"
    )
    config = {
        "db": args.db,
        "workers": args.workers,
        "server": args.server,
        "seconds_per_phase": args.seconds,
        "concurrency": args.concurrency,
        "links": args.links,
        "log_level": args.log_level,
        "command": "make bench" if not argv else f"python -m bench gateway_load {' '.join(argv)}",
    }
    options = Options(
        db=args.db, workers=args.workers, server=args.server, log_level=args.log_level
    )
    results: dict[str, Any] = {}
    with running(options) as stack:
        wallet = stack.partner("Bench Wallet", "wallet")
        state: dict[str, Any] = {}
        for name in names:
            prepare(name, stack, wallet, state, args)
            if name == "webhooks_dispatch":
                results[name] = asyncio.run(webhooks_dispatch(stack, wallet, state, args))
                continue
            scenario = SCENARIOS[name](stack, wallet, state)
            outcome = asyncio.run(measure(scenario, stack, args))
            results[name] = {"description": scenario.description, "unit": scenario.unit, **outcome}
            if name in PROFILED and args.profile:
                rate = outcome["fixed_loads"][-1]["offered_ops_s"]
                written = asyncio.run(profile(scenario, stack, rate, args.profile))
                if written:
                    results[name]["profile"] = str(written.relative_to(RESULTS.parent.parent))
    _ratios(results)
    args.output.mkdir(parents=True, exist_ok=True)
    for name, result in results.items():
        document = {"scenario": name, **result, "config": config, "machine": machine}
        (args.output / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
    summary = _summary(results, config, machine)
    (args.output / "SUMMARY.md").write_text(summary)
    print(summary)
    return 0
