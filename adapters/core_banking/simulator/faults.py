"""Fault injection for the core-banking simulator, switchable per operation at run time.

A rule names an operation (or `*`) and a mode; it may apply a limited number of `times` and
only inside a window (`active_from` .. `active_until`, on the simulator's clock), which is how
scheduled unavailability is modelled. Modes:

=============  =================================================================================
latency        wait `seconds`, then answer normally (adds up with other latency rules)
timeout        process (unless `process` is false), then stall `seconds` before answering, so
               the client times out; with `process=false` nothing is booked
html_502       answer an HTML error page with HTTP `status` (default 502), nothing processed
fault          answer the typed SOAP fault `code` (category/retryable from the code's defaults)
unavailable    answer SYSTEM_UNAVAILABLE (retryable), nothing processed
drop           process (unless `process` is false), then abort the connection: no response
garbage        process, then answer HTTP 200 with a truncated, unparsable body
pending        PostTransfer only: accept the posting as PENDING (booked later via the admin API)
no_dedup       replays are booked again instead of answered with the original result
extensions     add bank-specific elements (another namespace) at the end of responses
=============  =================================================================================
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from adapters.core_banking.contract import OPERATIONS

TERMINAL_MODES = frozenset({"timeout", "html_502", "fault", "unavailable", "drop", "garbage"})
FLAG_MODES = frozenset({"pending", "no_dedup", "extensions"})
MODES = TERMINAL_MODES | FLAG_MODES | {"latency"}

# Defaults for faults injected by code: (category, retryable, HTTP status, message).
SERVER_FAULTS: dict[str, tuple[bool, str]] = {
    "SYSTEM_UNAVAILABLE": (True, "The core banking system is temporarily unavailable"),
    "INTERNAL_ERROR": (False, "Internal error"),
    "TIMEOUT": (False, "The core timed out while processing"),
}


@dataclass
class FaultRule:
    operation: str
    mode: str
    seconds: float = 0.0
    code: str | None = None
    category: str | None = None
    retryable: bool | None = None
    message: str | None = None
    status: int = 502
    process: bool = True
    times: int | None = None
    active_from: datetime | None = None
    active_until: datetime | None = None
    id: str = field(default_factory=lambda: "flt_" + secrets.token_hex(6))
    hits: int = 0

    def __post_init__(self) -> None:
        if self.operation != "*" and self.operation not in OPERATIONS:
            raise ValueError(f"unknown operation {self.operation!r}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; one of {', '.join(sorted(MODES))}")
        if self.mode == "fault" and not self.code:
            raise ValueError("mode 'fault' needs a code (e.g. INSUFFICIENT_FUNDS)")
        if self.mode == "pending" and self.operation not in ("PostTransfer", "*"):
            raise ValueError("mode 'pending' applies to PostTransfer only")
        if self.category is not None and self.category not in ("CLIENT", "SERVER"):
            raise ValueError("category is CLIENT or SERVER")
        if self.seconds < 0 or (self.times is not None and self.times < 1):
            raise ValueError("seconds must be >= 0 and times >= 1")
        if not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code")
        for moment in (self.active_from, self.active_until):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("window bounds need a timezone (e.g. 2025-01-01T00:00:00Z)")
        if self.mode == "timeout" and not self.seconds:
            self.seconds = 30.0

    def fault_fields(self) -> tuple[str, str, bool, str]:
        """(code, category, retryable, message) of a `fault` or `unavailable` rule."""
        code = "SYSTEM_UNAVAILABLE" if self.mode == "unavailable" else str(self.code)
        default_retryable, default_message = SERVER_FAULTS.get(code, (False, f"Injected {code}"))
        category = self.category or ("SERVER" if code in SERVER_FAULTS else "CLIENT")
        retryable = default_retryable if self.retryable is None else self.retryable
        return code, category, retryable, self.message or default_message

    def active(self, operation: str, now: datetime) -> bool:
        if self.operation not in ("*", operation):
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        if self.active_from is not None and now < self.active_from:
            return False
        return not (self.active_until is not None and now >= self.active_until)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("active_from", "active_until"):
            if data[key] is not None:
                data[key] = data[key].isoformat().replace("+00:00", "Z")
        return data

    @classmethod
    def from_json(cls, data: Any) -> FaultRule:
        if not isinstance(data, dict):
            raise ValueError("a fault rule is a JSON object")
        known = {
            "operation", "mode", "seconds", "code", "category", "retryable", "message",
            "status", "process", "times", "active_from", "active_until",
        }  # fmt: skip
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        values = dict(data)
        values.setdefault("operation", "*")
        if "mode" not in values:
            raise ValueError("mode is required")
        for key in ("active_from", "active_until"):
            if values.get(key) is not None:
                values[key] = datetime.fromisoformat(str(values[key]))
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(str(exc)) from None


@dataclass
class Plan:
    """What the injector decided for one request."""

    latency: float = 0.0
    terminal: FaultRule | None = None
    pending: bool = False
    no_dedup: bool = False
    extensions: bool = False


class FaultInjector:
    """The active rules; thread-safe. Rules apply in the order they were added."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [rule for rule in self._rules if rule.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def plan(self, operation: str, now: datetime) -> Plan:
        plan = Plan()
        with self._lock:
            for rule in self._rules:
                if not rule.active(operation, now):
                    continue
                if rule.mode == "latency":
                    plan.latency += rule.seconds
                elif rule.mode in FLAG_MODES:
                    if rule.mode == "pending" and operation != "PostTransfer":
                        continue
                    setattr(plan, rule.mode, True)
                elif plan.terminal is None:
                    plan.terminal = rule
                else:
                    continue
                rule.hits += 1
        return plan
