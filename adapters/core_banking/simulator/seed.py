"""The simulator's demo accounts (documented in docs/core-banking-simulator.md).

Numbers are stable so README walkthroughs and demos can use them. Opening balances are set
directly (no statement entries); everything afterwards is a real posting.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from adapters.core_banking.simulator.ledger import Ledger


@dataclass(frozen=True)
class SeedAccount:
    number: str
    name: str
    currency: str
    balance: str
    kind: str = "customer"
    status: str = "ACTIVE"
    mobile: str | None = None
    debit_allowed: bool = True
    credit_allowed: bool = True
    daily_debit_limit: str | None = None
    note: str = ""


DEMO_ACCOUNTS: tuple[SeedAccount, ...] = (
    # --- customers ----------------------------------------------------------------------------
    SeedAccount("6222020000000001", "Li Wei", "CNY", "50000.00", mobile="+8613800138001",
                note="everyday customer, plenty of funds"),
    SeedAccount("6222020000000002", "Wang Fang", "CNY", "120.00", mobile="+8613800138002",
                note="low balance: debits above 120.00 fail INSUFFICIENT_FUNDS"),
    SeedAccount("6222020000000003", "Zhang Min", "CNY", "3000.00", mobile="+8613800138003",
                status="DORMANT", note="dormant: postings fail ACCOUNT_INACTIVE"),
    SeedAccount("6222020000000004", "Chen Jie", "CNY", "8000.00", mobile="+8613800138004",
                status="BLOCKED", note="blocked: postings fail ACCOUNT_INACTIVE"),
    SeedAccount("6222020000000005", "Liu Yang", "CNY", "10000.00", mobile="+8613800138005",
                daily_debit_limit="1000.00",
                note="daily debit limit 1,000.00: more fails LIMIT_EXCEEDED"),
    SeedAccount("6222020000000006", "Huang Lei", "CNY", "0.00", mobile="+8613800138006",
                status="CLOSED", note="closed account"),
    SeedAccount("4000100000000001", "John Smith", "USD", "5000.00", mobile="+14155550101",
                note="USD customer"),
    SeedAccount("4000100000000002", "Maria Garcia", "USD", "1000.00", mobile="+14155550102",
                debit_allowed=False, note="credit-only: debits fail DEBIT_NOT_ALLOWED"),
    SeedAccount("4000100000000003", "Ahmed Khan", "USD", "2500.00",
                note="no registered mobile (no OTP can be sent)"),
    SeedAccount("0110000000000001", "Wanjiru Kamau", "KES", "150000.00",
                mobile="+254712345601", note="KES customer"),
    SeedAccount("0110000000000002", "Otieno Odhiambo", "KES", "2500.00",
                mobile="+254712345602", note="KES customer with a small balance"),
    # --- partner settlement accounts ---------------------------------------------------------
    SeedAccount("9000000000000101", "Demo Wallet settlement CNY", "CNY", "10000000.00",
                kind="settlement", note="settlement account for a wallet partner"),
    SeedAccount("9000000000000102", "Demo Wallet settlement USD", "USD", "1000000.00",
                kind="settlement", note="settlement account for a wallet partner"),
    SeedAccount("9000000000000103", "Demo Wallet settlement KES", "KES", "100000000.00",
                kind="settlement", note="settlement account for a wallet partner"),
    SeedAccount("9000000000000104", "Demo Merchant settlement CNY", "CNY", "1000000.00",
                kind="settlement", note="settlement account for a merchant partner"),
    # --- provider clearing accounts ----------------------------------------------------------
    SeedAccount("9100000000000201", "GSMA Mobile Money clearing KES", "KES", "50000000.00",
                kind="clearing", note="provider gsma_mm"),
    SeedAccount("9100000000000202", "WeChat Pay clearing CNY", "CNY", "5000000.00",
                kind="clearing", note="provider wechatpay"),
    SeedAccount("9100000000000203", "Alipay clearing CNY", "CNY", "5000000.00",
                kind="clearing", note="provider alipay"),
    # --- fee income --------------------------------------------------------------------------
    SeedAccount("9200000000000301", "Fee income CNY", "CNY", "0.00", kind="fee"),
    SeedAccount("9200000000000302", "Fee income USD", "USD", "0.00", kind="fee"),
    SeedAccount("9200000000000303", "Fee income KES", "KES", "0.00", kind="fee"),
)  # fmt: skip


def seed(ledger: Ledger) -> int:
    """Open the demo accounts that do not exist yet; returns how many were opened."""
    existing = {row["number"] for row in ledger.accounts()}
    opened = 0
    for account in DEMO_ACCOUNTS:
        if account.number in existing:
            continue
        ledger.open_account(
            account.number,
            name=account.name,
            currency=account.currency,
            balance=Decimal(account.balance),
            status=account.status,
            debit_allowed=account.debit_allowed,
            credit_allowed=account.credit_allowed,
            mobile=account.mobile,
            kind=account.kind,
            daily_debit_limit=(
                Decimal(account.daily_debit_limit) if account.daily_debit_limit else None
            ),
        )
        opened += 1
    return opened
