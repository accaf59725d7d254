"""Helpers for payout tests: send a payout as a bank channel, deliver a provider sandbox's
callbacks into the in-process gateway, and check the money at the core simulator."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from tests.conftest import GSMA_CLEARING_ACCOUNT

WALLET = "+254712345601"


def send_payout(
    client: Any, channel: Any, source: str, *, amount: str = "100.00", msisdn: str = WALLET
) -> Any:
    return client.post(
        "/v1/payouts",
        headers={**channel.auth, "Idempotency-Key": str(uuid.uuid4())},
        json={
            "source_account": source,
            "provider": "gsma_mm",
            "recipient": {"type": "msisdn", "value": msisdn},
            "amount": {"value": amount, "currency": "KES"},
            "description": "School fees",
            "partner_reference": "mobile-app-123",
        },
    )


def send_cn_payout(
    client: Any,
    channel: Any,
    source: str,
    *,
    provider: str,
    recipient: dict[str, str],
    amount: str = "100.00",
    description: str = "Tuition",
) -> Any:
    """A CNY payout through WeChat Pay or Alipay."""
    return client.post(
        "/v1/payouts",
        headers={**channel.auth, "Idempotency-Key": str(uuid.uuid4())},
        json={
            "source_account": source,
            "provider": provider,
            "recipient": recipient,
            "amount": {"value": amount, "currency": "CNY"},
            "description": description,
        },
    )


def deliver_posts(sandbox: Any, client: Any) -> list[Any]:
    """Send a WeChat Pay or Alipay sandbox's due notifications into the gateway (in process);
    the sandbox sees the status and the body (Alipay wants `success`)."""

    def send(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        response = client.post(urlparse(url).path, headers=headers, content=body)
        return int(response.status_code), bytes(response.content)

    def status_only(url: str, headers: dict[str, str], body: bytes) -> int:
        return send(url, headers, body)[0]

    if type(sandbox).__name__ == "AlipaySandbox":
        return list(sandbox.deliver_callbacks(send))
    return list(sandbox.deliver_callbacks(status_only))


def deliver(sandbox: Any, client: Any) -> list[Any]:
    """Send the sandbox's due callbacks into the gateway (in process)."""

    def send(url: str, headers: dict[str, str], body: bytes) -> int:
        return int(client.put(urlparse(url).path, headers=headers, content=body).status_code)

    return list(sandbox.deliver_callbacks(send))


class Money:
    """The customer's and the provider clearing account's balances before and after, the one
    hold of the customer's account, and the postings of a payout at the core simulator.

    The clearing account is shared by every test, and a recovery run may settle other tests'
    payouts into it meanwhile: its change is measured net of what other references booked."""

    def __init__(
        self, core: Any, core_simulator: Any, source: str, clearing: str = GSMA_CLEARING_ACCOUNT
    ) -> None:
        self.core, self.sim, self.source = core, core_simulator, source
        self.clearing = clearing
        self.customer_before = Decimal(core.available(source))
        self.clearing_before = self.clearing_balance()
        self.entries_before = core_simulator.ledger.last_entry_id()

    def clearing_balance(self) -> Decimal:
        return Decimal(self.core.available(self.clearing))

    def clearing_change(self, payout_id: str) -> Decimal:
        """What the payout did to the clearing account's balance: its change since this object
        was made, less the entries other references booked there since."""
        others = sum(
            entry["amount_units"] * (1 if entry["credit_debit"] == "CRDT" else -1)
            for entry in self.sim.ledger.booked_entries(
                after=self.entries_before, accounts=[self.clearing]
            )
            if entry["external_reference"] != payout_id
        )
        return self.clearing_balance() - self.clearing_before - Decimal(others) / 100_000

    def holds(self) -> list[dict[str, Any]]:
        return list(self.sim.ledger.holds(account=self.source))

    def assert_paid(self, payout_id: str, amount: str) -> None:
        value = Decimal(amount)
        assert Decimal(self.core.available(self.source)) == self.customer_before - value
        postings = self.sim.postings(payout_id)
        assert len(postings) == 1  # captured exactly once
        posting = postings[0]
        assert (posting["debit_account"], posting["credit_account"]) == (
            self.source,
            self.clearing,
        )
        assert Decimal(posting["amount_units"]) / 100_000 == value
        assert posting["status"] == "BOOKED"
        assert [h["status"] for h in self.holds()] == ["CAPTURED"]  # never released
        assert self.clearing_change(payout_id) == value  # the provider's due, credited once

    def assert_not_paid(self, payout_id: str) -> None:
        assert Decimal(self.core.available(self.source)) == self.customer_before
        assert self.sim.postings(payout_id) == []  # never captured
        assert [h["status"] for h in self.holds()] in (["RELEASED"], [])
        assert self.clearing_change(payout_id) == 0


def get(client: Any, channel: Any, payout_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/payouts/{payout_id}", headers=channel.auth)
    assert response.status_code == 200, response.text
    return dict(response.json())
