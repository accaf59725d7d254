"""The Alipay sandbox's books: the merchant's (the bank's) Alipay balance, users' accounts,
transfer orders, trades (payments) and their refunds. Amounts are integer fen; the wire
speaks yuan with two decimals.

In memory, one lock; time from the injected clock; an order in DEALING settles lazily when
anyone looks after its time has come.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.domain.clock import Clock

CST = timezone(timedelta(hours=8))


def beijing(moment: datetime) -> str:
    return moment.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


def yuan(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


def fen(value: object) -> int | None:
    """ "12.30" -> 1230; None when not a yuan amount with at most two decimals."""
    if not isinstance(value, str):
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return None
    scaled = amount * 100
    if not amount.is_finite() or scaled != scaled.to_integral_value() or amount < 0:
        return None
    return int(scaled)


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class BusinessError(Exception):
    """An answer with a failure code: 40004 + sub_code (business), or 40002 etc."""

    def __init__(self, sub_code: str, sub_msg: str = "", *, code: str = "40004") -> None:
        super().__init__(sub_code)
        self.code, self.sub_code, self.sub_msg = code, sub_code, sub_msg or sub_code

    def to_json(self) -> dict[str, str]:
        msg = {"40004": "Business Failed", "40002": "Invalid Arguments",
               "20000": "Service Currently Unavailable"}.get(self.code, "Error")  # fmt: skip
        return {"code": self.code, "msg": msg, "sub_code": self.sub_code, "sub_msg": self.sub_msg}


@dataclass
class Account:
    user_id: str
    name: str
    logon_ids: tuple[str, ...] = ()
    balance: int = 0
    status: str = "active"  # active | blocked | uncertified

    @property
    def open_id(self) -> str:
        return "074a" + hashlib.sha256(self.user_id.encode()).hexdigest()[:40]

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "open_id": self.open_id,
            "logon_ids": list(self.logon_ids),
            "name": self.name,
            "balance": yuan(self.balance),
            "status": self.status,
        }


@dataclass
class Order:
    """One `alipay.fund.trans.uni.transfer` and what became of it."""

    out_biz_no: str
    order_id: str
    pay_fund_order_id: str
    fingerprint: str
    account: Account | None
    identity_type: str
    amount: int
    notify_url: str | None
    created_at: datetime
    complete_at: datetime
    name: str | None = None
    status: str = "DEALING"
    error_code: str | None = None
    fail_reason: str | None = None
    pay_date: datetime | None = None
    forced_fail: str | None = None
    callback_mode: str = "normal"

    def answer(self) -> dict[str, Any]:
        """The transfer's answer."""
        body: dict[str, Any] = {
            "code": "10000",
            "msg": "Success",
            "out_biz_no": self.out_biz_no,
            "order_id": self.order_id,
            "pay_fund_order_id": self.pay_fund_order_id,
            "status": self.status,
            "trans_date": beijing(self.pay_date or self.created_at),
        }
        return body

    def query(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": "10000",
            "msg": "Success",
            "order_id": self.order_id,
            "pay_fund_order_id": self.pay_fund_order_id,
            "out_biz_no": self.out_biz_no,
            "trans_amount": yuan(self.amount),
            "status": self.status,
            "order_fee": "0.00",
        }
        if self.pay_date is not None:
            body["pay_date"] = beijing(self.pay_date)
        if self.error_code:
            body["error_code"] = self.error_code
            body["fail_reason"] = self.fail_reason or self.error_code
        return body

    def changed(self) -> dict[str, Any]:
        """biz_content of the `alipay.fund.trans.order.changed` notification."""
        body = {
            "out_biz_no": self.out_biz_no,
            "order_id": self.order_id,
            "pay_fund_order_id": self.pay_fund_order_id,
            "status": self.status,
            "trans_amount": yuan(self.amount),
            "biz_scene": "DIRECT_TRANSFER",
            "product_code": "TRANS_ACCOUNT_NO_PWD",
            "origin_interface": "alipay.fund.trans.uni.transfer",
            "action_type": "FINISH",
        }
        if self.pay_date is not None:
            body["pay_date"] = beijing(self.pay_date)
        if self.error_code:
            body["error_code"] = self.error_code
            body["fail_reason"] = self.fail_reason or self.error_code
        return body


@dataclass
class Trade:
    trade_no: str
    out_trade_no: str
    buyer: Account
    total: int
    refunded: int = 0
    refunds: dict[str, int] = field(default_factory=dict)  # out_request_no -> fen


class Ledger:
    def __init__(self, clock: Clock, *, merchant_balance: int = 1_000_000_000) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self.merchant_balance = merchant_balance
        self.accounts: dict[str, Account] = {}
        self._by_logon: dict[str, Account] = {}
        self._by_open_id: dict[str, Account] = {}
        self.orders: dict[str, Order] = {}
        self.trades: dict[str, Trade] = {}

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    def open_account(self, user_id: str, name: str, **values: Any) -> Account:
        with self._lock:
            account = Account(user_id, name, **values)
            self.accounts[user_id] = account
            for logon in account.logon_ids:
                self._by_logon[logon] = account
            self._by_open_id[account.open_id] = account
            return account

    def find(self, identity_type: str, identity: str) -> Account | None:
        with self._lock:
            if identity_type == "ALIPAY_USER_ID":
                return self.accounts.get(identity)
            if identity_type == "ALIPAY_OPEN_ID":
                return self._by_open_id.get(identity)
            return self._by_logon.get(identity)

    def add_trade(self, user_id: str, total: int, *, out_trade_no: str | None = None) -> Trade:
        with self._lock:
            now = self.clock.now()
            trade = Trade(
                trade_no=now.strftime("%Y%m%d") + "22001" + secrets.token_hex(8)[:15],
                out_trade_no=out_trade_no or "order" + secrets.token_hex(6),
                buyer=self.accounts[user_id],
                total=total,
            )
            self.trades[trade.trade_no] = trade
            return trade

    def trade(self, *, trade_no: str | None, out_trade_no: str | None) -> Trade | None:
        with self._lock:
            if trade_no:
                return self.trades.get(trade_no)
            return next((t for t in self.trades.values() if t.out_trade_no == out_trade_no), None)

    def due(self) -> list[Order]:
        now = self.clock.now()
        settled = []
        with self._lock:
            for order in self.orders.values():
                if order.status == "DEALING" and order.complete_at <= now:
                    self.settle(order, now)
                    settled.append(order)
        return settled

    def settle(self, order: Order, now: datetime) -> None:
        if order.forced_fail:
            order.status, order.error_code = "FAIL", order.forced_fail
            order.fail_reason = "injected failure"
            return
        account = order.account
        if account is None or account.status != "active":
            order.status, order.error_code = "FAIL", "PAYEE_ACCOUNT_STATUS_ERROR"
            order.fail_reason = "收款方账户状态异常"
            return
        self.merchant_balance -= order.amount
        account.balance += order.amount
        order.status, order.pay_date = "SUCCESS", now

    def reset(self) -> None:
        with self._lock:
            self.accounts.clear()
            self._by_logon.clear()
            self._by_open_id.clear()
            self.orders.clear()
            self.trades.clear()


SEED_ACCOUNTS: tuple[dict[str, Any], ...] = (
    {"user_id": "2088102000000001", "name": "王伟", "logon_ids": ("wangwei@example.com",)},
    {"user_id": "2088102000000002", "name": "李娜", "logon_ids": ("13800138002",),
     "balance": 5000},
    {"user_id": "2088102000000003", "name": "张伟", "logon_ids": ("zhangwei@example.com",),
     "status": "blocked"},
    {"user_id": "2088102000000004", "name": "刘洋", "logon_ids": ("13800138004",),
     "status": "uncertified"},
    {"user_id": "2088102000000005", "name": "陈静", "logon_ids": ("chenjing@example.com",)},
)  # fmt: skip
# A paid trade the demo can refund (100.00 CNY by 李娜).
SEED_TRADE_NO = "2026030222001400000000000001"
SEED_OUT_TRADE_NO = "sandbox-order-0001"


def seed(ledger: Ledger) -> None:
    for values in SEED_ACCOUNTS:
        data = dict(values)
        ledger.open_account(str(data.pop("user_id")), str(data.pop("name")), **data)
    with ledger.locked():
        ledger.trades[SEED_TRADE_NO] = Trade(
            trade_no=SEED_TRADE_NO,
            out_trade_no=SEED_OUT_TRADE_NO,
            buyer=ledger.accounts["2088102000000002"],
            total=10000,
        )
