"""End to end: a payout through gateway -> core simulator -> GSMA sandbox -> callback -> capture,
and the ways it can go wrong. Each test ends with the balances at the core simulator (the
customer debited exactly once or not at all, the provider's clearing account credited) and
exactly one of capture or release of the customer's hold.

In process and fast: the `client` fixture is the gateway, the sandbox serves on a loopback
port, callbacks are delivered when the test says so, time is moved instead of waited for, and
the recovery worker is run explicitly.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import pytest

from adapters.providers.gsma_mm import GsmaMmProvider
from adapters.providers.gsma_mm.webhooks import callback_headers
from tests.conftest import (
    GSMA_CALLBACK_KEY,
    GSMA_CLEARING_ACCOUNT,
    GSMA_PROCESSING_SECONDS,
    gsma_settings,
)
from tests.event_schemas import assert_event_matches_schema

WALLET = "+254712345601"


@pytest.fixture
def channel(make_partner: Any) -> Any:
    return make_partner(kind="bank_channel")


@pytest.fixture
def customer(core: Any) -> str:
    return str(core.open_account("Wanjiru Kamau", "KES", balance="5000.00"))


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


def deliver(sandbox: Any, client: Any) -> list[Any]:
    """Send the sandbox's due callbacks into the gateway (in process)."""

    def send(url: str, headers: dict[str, str], body: bytes) -> int:
        return int(client.put(urlparse(url).path, headers=headers, content=body).status_code)

    return list(sandbox.deliver_callbacks(send))


def clearing_balance(core_simulator: Any) -> Decimal:
    return Decimal(core_simulator.balance(GSMA_CLEARING_ACCOUNT).available)


class Money:
    """Before/after balances at the core, and the one hold of the customer's account."""

    def __init__(self, core: Any, core_simulator: Any, source: str) -> None:
        self.core, self.sim, self.source = core, core_simulator, source
        self.customer_before = Decimal(core.available(source))
        self.clearing_before = clearing_balance(core_simulator)

    def holds(self) -> list[dict[str, Any]]:
        return list(self.sim.ledger.holds(account=self.source))

    def assert_paid(self, payout_id: str, amount: str) -> None:
        value = Decimal(amount)
        assert Decimal(self.core.available(self.source)) == self.customer_before - value
        assert clearing_balance(self.sim) == self.clearing_before + value
        assert self.core.postings(payout_id) == 1  # captured exactly once
        assert [h["status"] for h in self.holds()] == ["CAPTURED"]  # never released

    def assert_not_paid(self, payout_id: str) -> None:
        assert Decimal(self.core.available(self.source)) == self.customer_before
        assert clearing_balance(self.sim) == self.clearing_before
        assert self.core.postings(payout_id) == 0  # never captured
        assert [h["status"] for h in self.holds()] in (["RELEASED"], [])


def get(client: Any, channel: Any, payout_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/payouts/{payout_id}", headers=channel.auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_payout_is_held_sent_called_back_and_captured(
    client: Any,
    channel: Any,
    customer: str,
    core: Any,
    core_simulator: Any,
    gsma_sandbox: Any,
    clock: Any,
) -> None:
    money = Money(core, core_simulator, customer)
    wallet_before = gsma_sandbox.wallet_balance(WALLET)

    response = send_payout(client, channel, customer, amount="250.00")

    assert response.status_code == 201, response.text
    payout = response.json()
    assert payout["status"] == "processing"
    assert payout["source_account"] == {"masked": "****" + customer[-4:]}
    assert payout["recipient"] == {"type": "msisdn", "masked": "****5601"}
    # The funds are held while the provider pays.
    assert Decimal(core.available(customer)) == money.customer_before - Decimal("250.00")
    assert [h["status"] for h in money.holds()] == ["PLACED"]

    clock.advance(seconds=GSMA_PROCESSING_SECONDS)  # the provider completes the payment
    delivered = deliver(gsma_sandbox, client)

    assert [record.statuses for record in delivered] == [[204]]
    done = get(client, channel, payout["id"])
    assert done["status"] == "succeeded"
    assert done["provider_reference"]
    money.assert_paid(payout["id"], "250.00")
    assert gsma_sandbox.wallet_balance(WALLET) == wallet_before + Decimal("250.00")
    steps = [step["step"] for step in done["history"]]
    assert steps[:2] == ["requested", "hold_placed"]
    assert steps[-2:] == ["decided_capture", "captured"]
