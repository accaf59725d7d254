"""Fault rules of the core-banking simulator: validation, matching, times and windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.core_banking.simulator.faults import FaultInjector, FaultRule

NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mode": "explode"}, "unknown mode"),
        ({"operation": "Transfer", "mode": "drop"}, "unknown operation"),
        ({"mode": "fault"}, "needs a code"),
        ({"operation": "GetBalance", "mode": "pending"}, "PostTransfer only"),
        ({"mode": "drop", "times": 0}, "times"),
        ({"mode": "drop", "colour": "red"}, "unknown fields"),
        ({"operation": "Ping"}, "mode is required"),
        ({"mode": "unavailable", "active_from": "2025-03-10T09:00:00"}, "timezone"),
        ([], "JSON object"),
    ],
)
def test_bad_rules_are_refused_with_a_reason(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultRule.from_json(data)


def test_rules_round_trip_through_json() -> None:
    rule = FaultRule.from_json(
        {"operation": "Ping", "mode": "unavailable", "active_until": "2025-03-10T10:00:00Z"}
    )
    data = rule.to_json()
    assert data["active_until"] == "2025-03-10T10:00:00Z"
    assert data["id"].startswith("flt_")
    assert FaultRule.from_json({k: data[k] for k in ("operation", "mode", "active_until")})


def test_a_timeout_stalls_thirty_seconds_unless_told() -> None:
    assert FaultRule("PostTransfer", "timeout").seconds == 30.0
    assert FaultRule("PostTransfer", "timeout", seconds=2).seconds == 2


def test_plan_combines_latency_flags_and_the_first_terminal_rule() -> None:
    faults = FaultInjector()
    faults.add(FaultRule("*", "latency", seconds=0.1))
    faults.add(FaultRule("PostTransfer", "latency", seconds=0.2))
    faults.add(FaultRule("PostTransfer", "no_dedup"))
    first = faults.add(FaultRule("PostTransfer", "drop"))
    faults.add(FaultRule("*", "html_502"))
    plan = faults.plan("PostTransfer", NOW)
    assert plan.latency == pytest.approx(0.3)
    assert plan.no_dedup and not plan.pending
    assert plan.terminal is first
    other = faults.plan("GetBalance", NOW)
    assert other.terminal is not None and other.terminal.mode == "html_502"
    assert not other.no_dedup


def test_times_limits_how_often_a_rule_applies() -> None:
    faults = FaultInjector()
    faults.add(FaultRule("GetBalance", "html_502", times=2))
    assert [faults.plan("GetBalance", NOW).terminal is not None for _ in range(3)] == [
        True,
        True,
        False,
    ]


def test_windows_schedule_unavailability() -> None:
    faults = FaultInjector()
    faults.add(
        FaultRule("*", "unavailable", active_from=NOW, active_until=NOW + timedelta(minutes=30))
    )
    assert faults.plan("Ping", NOW - timedelta(seconds=1)).terminal is None
    assert faults.plan("Ping", NOW).terminal is not None
    assert faults.plan("Ping", NOW + timedelta(minutes=30)).terminal is None


def test_fault_fields_default_from_the_code() -> None:
    assert FaultRule("*", "unavailable").fault_fields()[:3] == (
        "SYSTEM_UNAVAILABLE",
        "SERVER",
        True,
    )
    assert FaultRule("*", "fault", code="INTERNAL_ERROR").fault_fields()[:3] == (
        "INTERNAL_ERROR",
        "SERVER",
        False,
    )
    assert FaultRule("*", "fault", code="LIMIT_EXCEEDED").fault_fields()[:3] == (
        "LIMIT_EXCEEDED",
        "CLIENT",
        False,
    )
    custom = FaultRule("*", "fault", code="X_Y", category="SERVER", retryable=True, message="m")
    assert custom.fault_fields() == ("X_Y", "SERVER", True, "m")


def test_rules_can_be_removed_and_cleared() -> None:
    faults = FaultInjector()
    rule = faults.add(FaultRule("Ping", "drop"))
    assert faults.remove(rule.id) and not faults.remove(rule.id)
    faults.add(FaultRule("Ping", "drop"))
    faults.clear()
    assert faults.rules() == []
