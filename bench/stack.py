"""A whole gateway stack as separate processes, started for one benchmark run and torn down.

The processes are the ones production runs (`wallet-gateway serve --gunicorn` with N uvicorn
workers, `wallet-gateway worker`), next to the standalone core-banking simulator, the GSMA
Mobile Money sandbox and a webhook sink, on a fresh PostgreSQL database (the local server) or a
SQLite file. Everything is configured the documented way, through `GATEWAY_*` variables; the
only departures from the defaults lift the per-partner rate limit and the per-link velocity
rule, which would otherwise (correctly) refuse a load test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent
CLI = str(BIN / "wallet-gateway")
ADMIN_POSTGRES = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
HUGE = "100000000.00"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Options:
    db: str = "postgresql"  # or "sqlite"
    workers: int = 2
    server: str = "gunicorn"  # or "uvicorn"
    log_level: str = "INFO"


@dataclass
class Partner:
    id: str
    secret: str
    token: str = ""
    settlement_account: str | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Stack:
    options: Options
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    database: str | None = None
    gateway_url: str = ""
    core_url: str = ""
    gsma_url: str = ""
    sink_url: str = ""

    # --- processes ------------------------------------------------------------------------

    def _spawn(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes[name] = process
        return process

    def _wait_http(self, name: str, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}):\n{self.tail(name)}")
            with suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            time.sleep(0.2)
        raise RuntimeError(
            f"{name} did not answer {url} within {timeout:.0f} s:\n{self.tail(name)}"
        )

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [CLI, *args], env=self.env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"wallet-gateway {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def pids(self, name: str) -> list[int]:
        """The process and all its descendants (gunicorn's master and workers, say)."""
        process = self.processes.get(name)
        return process_tree(process.pid) if process and process.poll() is None else []

    def start(self) -> None:
        port, core_port, gsma_port, sink_port = (free_port() for _ in range(4))
        self.gateway_url = f"http://127.0.0.1:{port}"
        self.core_url = f"http://127.0.0.1:{core_port}"
        self.gsma_url = f"http://127.0.0.1:{gsma_port}"
        self.sink_url = f"http://127.0.0.1:{sink_port}"
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        if self.options.db == "postgresql":
            self.database = f"bench_{uuid.uuid4().hex[:10]}"
            _admin_sql(f'CREATE DATABASE "{self.database}"')
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.database}"
        else:
            url = f"sqlite:///{(self.workdir / 'gateway.db').resolve()}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
            "GATEWAY_ENVIRONMENT": "development",
            "GATEWAY_DATA_DIR": str(data),
            "GATEWAY_DATABASE_URL": url,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_WORKERS": str(self.options.workers),
            "GATEWAY_PUBLIC_BASE_URL": self.gateway_url,
            "GATEWAY_LOG_LEVEL": self.options.log_level,
            "GATEWAY_RUN_WORKERS_IN_PROCESS": "false",
            "GATEWAY_CORE_BANKING_URL": f"{self.core_url}/core-banking",
            "GATEWAY_CORE_BANKING_SIMULATOR_PORT": str(core_port),
            "GATEWAY_CORE_BANKING_SIMULATOR_DB": str(self.workdir / "core-banking.db"),
            "GATEWAY_PROVIDERS": "gsma_mm",
            "GATEWAY_GSMA_MM_BASE_URL": self.gsma_url,
            "GATEWAY_GSMA_MM_SIMULATOR_PORT": str(gsma_port),
            "GATEWAY_GSMA_MM_CLEARING_ACCOUNT": "KES:9100000000000201",  # the simulator's
            "GATEWAY_WEBHOOK_ALLOW_HTTP": "true",
            "GATEWAY_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "GATEWAY_WEBHOOK_DISPATCH_INTERVAL_SECONDS": "0.2",
            # A load test is, by design, what these two protections refuse.
            "GATEWAY_RATE_LIMIT_DEFAULT": "1000000/second",
            "GATEWAY_RISK_VELOCITY_MAX": "100000000",
            "GATEWAY_ACCESS_TOKEN_TTL_SECONDS": "86400",
            "PYTHONUNBUFFERED": "1",
        }
        self.cli("migrate")
        self._spawn("core-banking", CLI, "simulator", "core-banking")
        self._spawn("gsma-mm", CLI, "simulator", "gsma-mm")
        self._spawn(
            "sink",
            sys.executable,
            "-m",
            "uvicorn",
            "bench.sink:app",
            "--port",
            str(sink_port),
            "--no-access-log",
            "--log-level",
            "warning",
        )
        serve = [CLI, "serve", "--workers", str(self.options.workers)]
        if self.options.server == "gunicorn":
            serve.append("--gunicorn")
        self._spawn("gateway", *serve)
        self._wait_http("core-banking", f"{self.core_url}/simulator")
        self._wait_http("gsma-mm", f"{self.gsma_url}/sandbox")
        self._wait_http("sink", f"{self.sink_url}/stats")
        self._wait_http("gateway", f"{self.gateway_url}/health/ready")

    def start_worker(self) -> None:
        if "worker" not in self.processes or self.processes["worker"].poll() is not None:
            self._spawn("worker", CLI, "worker")

    def stop_process(self, name: str) -> None:
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        for name in list(self.processes):
            self.stop_process(name)
        if self.database:
            with suppress(Exception):
                _admin_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    # --- seeding through the public surfaces ---------------------------------------------

    def open_account(
        self, name: str, currency: str = "CNY", *, kind: str = "customer", mobile: str | None = None
    ) -> str:
        body: dict[str, Any] = {"name": name, "currency": currency, "kind": kind, "balance": HUGE}
        if mobile:
            body["registered_mobile"] = mobile
        response = httpx.post(f"{self.core_url}/simulator/accounts", json=body, timeout=10)
        response.raise_for_status()
        return str(response.json()["number"])

    def partner(self, name: str, kind: str, currency: str | None = "CNY") -> Partner:
        args = ["partners", "create", "--name", name, "--kind", kind, "--format", "json"]
        settlement = None
        if kind in ("wallet", "merchant") and currency:
            settlement = self.open_account(f"{name} settlement", currency, kind="settlement")
            args += ["--settlement-account", settlement, "--settlement-currency", currency]
        created = json.loads(self.cli(*args))
        partner = Partner(created["client_id"], created["client_secret"], "", settlement)
        response = httpx.post(
            f"{self.gateway_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(partner.id, partner.secret),
            timeout=10,
        )
        response.raise_for_status()
        partner.token = response.json()["access_token"]
        return partner

    def otp(self, mobile: str) -> str:
        """The newest code the sandbox notifier kept for `mobile` (development only)."""
        outbox = Path(self.env["GATEWAY_DATA_DIR"]) / "sandbox-sms.jsonl"
        for line in reversed(outbox.read_text().splitlines()):
            message = json.loads(line)
            if message.get("to") == mobile:
                found = re.search(r"\b(\d{6})\b", message["text"])
                if found:
                    return found.group(1)
        raise LookupError(f"no code sent to {mobile}")

    def link_body(self, account: str, holder: str) -> dict[str, Any]:
        return {
            "account_number": account,
            "holder_name": holder,
            "currency": "CNY",
            "wallet_account_reference": f"bench-{uuid.uuid4().hex[:12]}",
            "consent": {"scopes": ["debit", "credit", "balance", "transactions"]},
        }

    def active_links(self, partner: Partner, count: int) -> list[str]:
        links = []
        with httpx.Client(base_url=self.gateway_url, headers=partner.auth, timeout=30) as client:
            for index in range(count):
                mobile = f"+86139{uuid.uuid4().int % 10**8:08d}"
                holder = f"BENCH Customer {index}"
                account = self.open_account(holder, mobile=mobile)
                created = client.post(
                    "/v1/links",
                    json=self.link_body(account, holder),
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                )
                created.raise_for_status()
                link_id = created.json()["id"]
                verified = client.post(
                    f"/v1/links/{link_id}/verify",
                    json={"code": self.otp(mobile)},
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                )
                verified.raise_for_status()
                links.append(link_id)
        return links


def _admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_POSTGRES, autocommit=True, connect_timeout=5) as connection:
        connection.execute(statement.encode())


def database_counters(database: str) -> dict[str, int]:
    """Transactions and row operations of one database so far (pg_stat_database)."""
    import psycopg

    with psycopg.connect(ADMIN_POSTGRES, autocommit=True, connect_timeout=5) as connection:
        row = connection.execute(
            "SELECT xact_commit + xact_rollback, tup_returned, tup_inserted, tup_updated "
            "FROM pg_stat_database WHERE datname = %s",
            (database,),
        ).fetchone()
    names = ("transactions", "rows_read", "rows_inserted", "rows_updated")
    return dict(zip(names, (int(value) for value in row or (0, 0, 0, 0)), strict=True))


def process_tree(root: int) -> list[int]:
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with suppress(OSError):
                pending.extend(int(child) for child in (task / "children").read_text().split())
    return found


def cpu_times(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of these processes so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for pid in pids:
        with suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
    return user / ticks, system / ticks


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far."""
    return sum(cpu_times(pids))


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(entry.name))
    return pids


@contextmanager
def running(options: Options) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="wallet-gateway-bench-") as workdir:
        stack = Stack(options, Path(workdir))
        try:
            stack.start()
            yield stack
        except BaseException:
            for name in stack.processes:
                print(f"--- {name} log (tail) ---\n{stack.tail(name)}", file=sys.stderr)
            raise
        finally:
            stack.stop()
