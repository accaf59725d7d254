"""Consent limits that concurrency or the calendar could slip past: concurrent debits against
the daily limit, and a monthly limit reached on days each within their daily limit."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from tests.flows import post_transfer


def test_concurrent_debits_never_exceed_the_daily_limit(client, core, funded) -> None:  # type: ignore[no-untyped-def]
    s = funded(balance="100000.00")  # consent: 5000.00 per transaction, 20000.00 a day
    requests = 10  # 10 x 3000.00 = 30000.00 asked; 6 fit (18000.00), a 7th would be 21000.00
    barrier = threading.Barrier(requests)

    def attempt(_: int) -> tuple[int, dict[str, Any]]:
        barrier.wait()
        response = post_transfer(client, s, "3000.00")  # each under its own Idempotency-Key
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=requests) as pool:
        answers = list(pool.map(attempt, range(requests)))
    accepted = [body for status, body in answers if status == 201]
    refused = [body for status, body in answers if status != 201]
    assert {body["status"] for body in accepted} == {"succeeded"}
    total = sum(Decimal(body["amount"]["value"]) for body in accepted)
    assert total <= Decimal("20000.00")
    assert len(accepted) == 6, answers
    assert Counter((b["status"], b["code"], b.get("limit")) for b in refused) == {
        (422, "limit_exceeded", "daily"): requests - 6
    }
    assert core.available(s.account) == "82000.00"
    listed = client.get(f"/v1/transfers?link_id={s.link['id']}", headers=s.partner.auth).json()
    assert sorted(t["id"] for t in listed["data"]) == sorted(b["id"] for b in accepted)


def test_the_monthly_limit_binds_when_each_day_is_within_the_daily_limit(
    client, container, core, funded, restore_clock
) -> None:  # type: ignore[no-untyped-def]
    # The 10th of next month at noon (business time): the days used below share one month.
    zone = ZoneInfo(container.settings.business_timezone)
    now = restore_clock.now().astimezone(zone)
    tenth = (now.replace(day=1) + timedelta(days=40)).replace(
        day=10, hour=12, minute=0, second=0, microsecond=0
    )
    restore_clock.advance(tenth - now)
    s = funded(
        balance="100000.00",
        consent_limits={"per_transaction": "5000.00", "daily": "20000.00", "monthly": "30000.00"},
    )
    for _ in range(4):  # day 1: 16000.00 of 20000.00
        assert post_transfer(client, s, "4000.00").json()["status"] == "succeeded"
    restore_clock.advance(days=1)
    s.partner.renew()
    for _ in range(3):  # day 2: 12000.00 of 20000.00; the month 28000.00 of 30000.00
        assert post_transfer(client, s, "4000.00").json()["status"] == "succeeded"
    over = post_transfer(client, s, "4000.00")  # 16000.00 today is fine; 32000.00 this month is not
    assert over.status_code == 422, over.text
    assert (over.json()["code"], over.json()["limit"]) == ("limit_exceeded", "monthly")
    assert post_transfer(client, s, "2000.00").json()["status"] == "succeeded"  # exactly 30000.00
    assert post_transfer(client, s, "0.01").json()["limit"] == "monthly"
    assert core.available(s.account) == "70000.00"
    # The first day of the following month starts afresh.
    following = (tenth.replace(day=1) + timedelta(days=40)).replace(day=1)
    restore_clock.advance(following - restore_clock.now().astimezone(zone))
    s.partner.renew()
    assert post_transfer(client, s, "4000.00").json()["status"] == "succeeded"
