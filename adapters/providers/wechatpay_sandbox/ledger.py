"""The WeChat Pay sandbox's books: the merchant's operating account, users' WeChat balances
(零钱), transfer bills, payments and their refunds. Amounts are integer fen.

In memory, one lock. Time comes from the injected clock; a bill or refund settles lazily when
anyone looks after its time has come (a query, the callback dispatcher, a test), so tests move
the clock instead of sleeping.
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
from typing import Any

from gateway.domain.clock import Clock

CST = timezone(timedelta(hours=8))
# A bill waiting for the user's confirmation is closed after this (money back to the merchant).
CONFIRM_WINDOW = timedelta(hours=24)


def stamp(moment: datetime) -> str:
    """WeChat Pay's rfc3339 with the +08:00 offset."""
    return moment.astimezone(CST).replace(microsecond=0).isoformat()


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class SandboxError(Exception):
    """An error answer: HTTP status, code, message."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.status, self.code, self.message = status, code, message or code

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


@dataclass
class User:
    openid: str
    name: str
    balance: int = 0
    status: str = "active"  # active | frozen
    auto_receive: bool = True  # False: every transfer waits for the user's confirmation

    def to_json(self) -> dict[str, Any]:
        return {
            "openid": self.openid,
            "name": self.name,
            "balance_fen": self.balance,
            "status": self.status,
            "auto_receive": self.auto_receive,
        }


@dataclass
class Bill:
    """One transfer (商家转账) and what became of it."""

    out_bill_no: str
    transfer_bill_no: str
    fingerprint: str
    appid: str
    openid: str
    amount: int
    remark: str
    notify_url: str | None
    created_at: datetime
    complete_at: datetime | None  # None: waiting for the user's confirmation
    user_name: str | None = None
    state: str = "ACCEPTED"
    fail_reason: str | None = None
    updated_at: datetime | None = None
    forced_fail: str | None = None
    callback_mode: str = "normal"  # normal | drop | duplicate | forged

    def to_json(self, mchid: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "mch_id": mchid,
            "out_bill_no": self.out_bill_no,
            "transfer_bill_no": self.transfer_bill_no,
            "appid": self.appid,
            "state": self.state,
            "transfer_amount": self.amount,
            "transfer_remark": self.remark,
            "openid": self.openid,
            "create_time": stamp(self.created_at),
            "update_time": stamp(self.updated_at or self.created_at),
        }
        if self.fail_reason:
            body["fail_reason"] = self.fail_reason
        return body

    def created(self) -> dict[str, Any]:
        """The answer to the POST."""
        body: dict[str, Any] = {
            "out_bill_no": self.out_bill_no,
            "transfer_bill_no": self.transfer_bill_no,
            "create_time": stamp(self.created_at),
            "state": self.state,
        }
        if self.state == "WAIT_USER_CONFIRM":
            body["package_info"] = "sandbox_package_" + self.transfer_bill_no[-12:]
        if self.fail_reason:
            body["fail_reason"] = self.fail_reason
        return body


@dataclass
class Payment:
    """A completed payment a merchant may refund (seeded, or created by the admin API)."""

    transaction_id: str
    out_trade_no: str
    openid: str
    total: int
    success_time: datetime
    refunded: int = 0

    @property
    def trade_state(self) -> str:
        return "REFUND" if self.refunded else "SUCCESS"

    def to_json(self, mchid: str, appid: str) -> dict[str, Any]:
        return {
            "appid": appid,
            "mchid": mchid,
            "out_trade_no": self.out_trade_no,
            "transaction_id": self.transaction_id,
            "trade_type": "JSAPI",
            "trade_state": self.trade_state,
            "trade_state_desc": "支付成功",
            "success_time": stamp(self.success_time),
            "payer": {"openid": self.openid},
            "amount": {
                "total": self.total,
                "payer_total": self.total,
                "currency": "CNY",
                "payer_currency": "CNY",
            },
        }


@dataclass
class Refund:
    out_refund_no: str
    refund_id: str
    fingerprint: str
    payment: Payment
    amount: int
    notify_url: str | None
    created_at: datetime
    complete_at: datetime
    status: str = "PROCESSING"
    success_time: datetime | None = None
    callback_mode: str = "normal"
    events: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "refund_id": self.refund_id,
            "out_refund_no": self.out_refund_no,
            "transaction_id": self.payment.transaction_id,
            "out_trade_no": self.payment.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": stamp(self.created_at),
            "status": self.status,
            "amount": {
                "total": self.payment.total,
                "refund": self.amount,
                "payer_total": self.payment.total,
                "payer_refund": self.amount,
                "settlement_refund": self.amount,
                "settlement_total": self.payment.total,
                "discount_refund": 0,
                "currency": "CNY",
            },
        }
        if self.success_time is not None:
            body["success_time"] = stamp(self.success_time)
        return body


class Ledger:
    def __init__(self, clock: Clock, *, merchant_balance: int = 1_000_000_000) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self.merchant_balance = merchant_balance
        self.users: dict[str, User] = {}
        self.bills: dict[str, Bill] = {}
        self.payments: dict[str, Payment] = {}
        self.refunds: dict[str, Refund] = {}

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    def open_user(self, openid: str, name: str, **values: Any) -> User:
        with self._lock:
            user = User(openid, name, **values)
            self.users[openid] = user
            return user

    def add_payment(self, openid: str, total: int, *, out_trade_no: str | None = None) -> Payment:
        with self._lock:
            now = self.clock.now()
            payment = Payment(
                transaction_id="42000" + now.strftime("%Y%m%d") + secrets.token_hex(8)[:15],
                out_trade_no=out_trade_no or "order" + secrets.token_hex(6),
                openid=openid,
                total=total,
                success_time=now,
            )
            self.payments[payment.transaction_id] = payment
            return payment

    def payment(
        self, *, transaction_id: str | None = None, out_trade_no: str | None = None
    ) -> Payment | None:
        with self._lock:
            if transaction_id:
                return self.payments.get(transaction_id)
            return next((p for p in self.payments.values() if p.out_trade_no == out_trade_no), None)

    def reserved(self) -> int:
        """Fen promised to bills not settled yet."""
        return sum(
            bill.amount
            for bill in self.bills.values()
            if bill.state in ("ACCEPTED", "PROCESSING", "WAIT_USER_CONFIRM", "TRANSFERING")
        )

    def due(self) -> tuple[list[Bill], list[Refund]]:
        """Settle what is due; returns the bills and refunds just settled."""
        now = self.clock.now()
        bills, refunds = [], []
        with self._lock:
            for bill in self.bills.values():
                if bill.state == "WAIT_USER_CONFIRM" and now >= bill.created_at + CONFIRM_WINDOW:
                    bill.state, bill.fail_reason, bill.updated_at = (
                        "CANCELLED",
                        "OVERDUE_CLOSE",
                        now,
                    )
                    bills.append(bill)
                elif (
                    bill.state in ("ACCEPTED", "PROCESSING", "TRANSFERING")
                    and bill.complete_at is not None
                    and bill.complete_at <= now
                ):
                    self._settle(bill, now)
                    bills.append(bill)
            for refund in self.refunds.values():
                if refund.status == "PROCESSING" and refund.complete_at <= now:
                    refund.status, refund.success_time = "SUCCESS", now
                    refunds.append(refund)
        return bills, refunds

    def _settle(self, bill: Bill, now: datetime) -> None:
        bill.updated_at = now
        user = self.users.get(bill.openid)
        if bill.forced_fail:
            bill.state, bill.fail_reason = "FAIL", bill.forced_fail
            return
        if user is None:
            bill.state, bill.fail_reason = "FAIL", "OPENID_INVALID"
            return
        if user.status != "active":
            bill.state, bill.fail_reason = "FAIL", "ACCOUNT_FROZEN"
            return
        if bill.user_name is not None and bill.user_name != user.name:
            bill.state, bill.fail_reason = "FAIL", "NAME_NOT_CORRECT"
            return
        self.merchant_balance -= bill.amount
        user.balance += bill.amount
        bill.state = "SUCCESS"

    def reset(self) -> None:
        with self._lock:
            self.users.clear()
            self.bills.clear()
            self.payments.clear()
            self.refunds.clear()


SEED_USERS: tuple[dict[str, Any], ...] = (
    {"openid": "oWxSandbox_WangWei_000000001", "name": "王伟", "balance": 0},
    {"openid": "oWxSandbox_LiNa_0000000000002", "name": "李娜", "balance": 5000},
    {"openid": "oWxSandbox_ZhangWei_00000003", "name": "张伟", "status": "frozen"},
    {"openid": "oWxSandbox_LiuYang_000000004", "name": "刘洋", "auto_receive": False},
    {"openid": "oWxSandbox_ChenJing_00000005", "name": "陈静"},
)
# A paid order the demo can refund (100.00 CNY by 李娜).
SEED_TRANSACTION_ID = "4200000000202603020000000001"
SEED_OUT_TRADE_NO = "sandbox-order-0001"


def seed(ledger: Ledger) -> None:
    for user in SEED_USERS:
        values = dict(user)
        ledger.open_user(str(values.pop("openid")), str(values.pop("name")), **values)
    now = ledger.clock.now()
    with ledger.locked():
        ledger.payments[SEED_TRANSACTION_ID] = Payment(
            transaction_id=SEED_TRANSACTION_ID,
            out_trade_no=SEED_OUT_TRADE_NO,
            openid="oWxSandbox_LiNa_0000000000002",
            total=10000,
            success_time=now,
        )
