"""An in-memory stand-in for core banking (reads only), until the SOAP simulator is wired in."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

from adapters.base import (
    CoreAccount,
    CoreBalance,
    CoreBankingRejected,
    StatementEntry,
    StatementPage,
)
from gateway.domain.money import Money

_numbers = itertools.count(6222020000000001)


class FakeCore:
    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    def open_account(
        self,
        holder: str = "WANG Wei",
        currency: str = "CNY",
        *,
        mobile: str | None = "+8613800138000",
        status: str = "ACTIVE",
        balance: int = 1_000_000,
        debit_allowed: bool = True,
        credit_allowed: bool = True,
    ) -> str:
        number = str(next(_numbers))
        self.accounts[number] = {
            "holder": holder,
            "currency": currency,
            "mobile": mobile,
            "status": status,
            "balance": balance,
            "debit": debit_allowed,
            "credit": credit_allowed,
            "entries": [],
        }
        return number

    def _account(self, number: str) -> dict[str, Any]:
        if number not in self.accounts:
            raise CoreBankingRejected(
                "no such account", core_code="ACCOUNT_NOT_FOUND", category="CLIENT"
            )
        return self.accounts[number]

    def get_account(self, account_number: str) -> CoreAccount:
        self.calls.append("GetAccount")
        account = self._account(account_number)
        return CoreAccount(
            account_number,
            account["holder"],
            account["currency"],
            account["status"],
            account["debit"],
            account["credit"],
            account["mobile"],
        )

    def get_balance(self, account_number: str) -> CoreBalance:
        self.calls.append("GetBalance")
        account = self._account(account_number)
        money = Money(account["balance"], account["currency"])
        return CoreBalance(account_number, money, money, datetime.now(UTC))

    def get_statement(
        self,
        *,
        account_number: str,
        from_date: date,
        to_date: date,
        page_token: str | None = None,
        page_size: int = 100,
    ) -> StatementPage:
        self.calls.append("GetStatement")
        account = self._account(account_number)
        start = int(page_token or 0)
        entries = [
            StatementEntry(
                f"E{n}",
                Money(100 * (n + 1), account["currency"]),
                "DBIT",
                "BOOK",
                to_date,
                to_date,
                f"tr_{n}",
                f"C{n}",
                "test entry",
            )
            for n in range(5)
        ]
        chunk = entries[start : start + page_size]
        more = start + page_size < len(entries)
        return StatementPage(account_number, chunk, str(start + page_size) if more else None)

    def ping(self) -> None:
        return None
