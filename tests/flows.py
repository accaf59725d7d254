"""Helpers that drive money flows through the public API (links, transfers) in tests."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any


def post_json(
    client,
    path: str,
    partner,
    body: dict[str, Any] | None = None,  # type: ignore[no-untyped-def]
    key: str | None = None,
):
    headers = {**partner.auth, "Idempotency-Key": key or str(uuid.uuid4())}
    if body is None:
        return client.post(path, headers=headers)
    return client.post(path, json=body, headers=headers)


def link_body(account: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "account_number": account,
        "holder_name": "WANG Wei",
        "currency": "CNY",
        "wallet_account_reference": "wallet-user-42",
        "consent": {
            "scopes": ["debit", "credit", "balance", "transactions"],
            "limits": {
                "per_transaction": {"value": "5000.00", "currency": "CNY"},
                "daily": {"value": "20000.00", "currency": "CNY"},
            },
        },
    }
    body.update(overrides)
    return body


def last_code(container, mobile: str) -> str:  # type: ignore[no-untyped-def]
    """The 6-digit code in the newest sandbox SMS to `mobile`."""
    text = container.notifier.messages(to=mobile, limit=1)[0]["text"]
    return re.search(r"\b(\d{6})\b", text).group(1)  # type: ignore[union-attr]


def create_active_link(  # type: ignore[no-untyped-def]
    client,
    container,
    core,
    partner,
    consent_limits: dict[str, str] | None = None,
    **account_kwargs: Any,
) -> dict[str, Any]:
    """Open an account at the simulator, link it and confirm the OTP; returns the link.
    `consent_limits` (e.g. {"daily": "100.00"}, CNY) replace the default consent limits."""
    mobile = account_kwargs.setdefault("mobile", f"+86138{uuid.uuid4().int % 10**8:08d}")
    account = core.open_account(**account_kwargs)
    currency = account_kwargs.get("currency", "CNY")
    body = link_body(account, currency=currency)
    if currency != "CNY":
        body["consent"].pop("limits")
    if consent_limits is not None:
        body["consent"]["limits"] = {
            name: {"value": value, "currency": currency} for name, value in consent_limits.items()
        }
    created = post_json(client, "/v1/links", partner, body)
    assert created.status_code == 201, created.text
    verified = post_json(
        client,
        f"/v1/links/{created.json()['id']}/verify",
        partner,
        {"code": last_code(container, mobile)},
    )
    assert verified.status_code == 200, verified.text
    return verified.json()  # type: ignore[no-any-return]


@dataclass
class Setup:
    partner: Any
    link: dict[str, Any]
    account: str
    settlement: str


def make_funded(client, container, core, make_partner):  # type: ignore[no-untyped-def]
    """A wallet with its own settlement account and one active link to a fresh account."""

    def make(balance: str = "10000.00", currency: str = "CNY", **link_options: Any) -> Setup:
        settlement = core.open_account(
            "Wallet settlement", currency, kind="settlement", balance="100000.00", mobile=None
        )
        partner = make_partner(settlement_account=settlement, settlement_currency=currency)
        link = create_active_link(
            client, container, core, partner, balance=balance, currency=currency, **link_options
        )
        with container.db.read() as session:
            from gateway.store.tables import Link

            account = container.links.account_number(session, session.get(Link, link["id"]))
        return Setup(partner, link, account, settlement)

    return make


def post_transfer(  # type: ignore[no-untyped-def]
    client,
    s: Setup,
    amount: str = "100.00",
    direction: str = "debit",
    key: str | None = None,
    currency: str = "CNY",
    **extra: Any,
):
    body = {
        "link_id": s.link["id"],
        "direction": direction,
        "amount": {"value": amount, "currency": currency},
        **extra,
    }
    headers = {**s.partner.auth, "Idempotency-Key": key or str(uuid.uuid4())}
    return client.post("/v1/transfers", json=body, headers=headers)


def get_transfer(client, s: Setup, transfer_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The transfer as its partner reads it (with history)."""
    return client.get(f"/v1/transfers/{transfer_id}", headers=s.partner.auth).json()  # type: ignore[no-any-return]


def post(client, s: Setup, path: str, body: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    return post_json(client, path, s.partner, body)


def charge_fees(  # type: ignore[no-untyped-def]
    container,
    s: Setup,
    direction: str = "debit",
    *,
    fixed: int = 0,
    rate_ppm: int = 0,
    minimum: int = 0,
    maximum: int | None = None,
    currency: str = "CNY",
) -> None:
    """Give the setup's partner a fee schedule (amounts in minor units, rate in ppm)."""
    from gateway.store.tables import FeeScheduleRow

    with container.db.transaction() as session:
        session.add(
            FeeScheduleRow(
                partner_id=s.partner.id,
                direction=direction,
                currency=currency,
                fixed=fixed,
                rate_ppm=rate_ppm,
                minimum=minimum,
                maximum=maximum,
            )
        )
