"""The WeChat Pay sandbox on its own (its Flask app, no network): it checks the merchant's
request signatures as WeChat Pay does, signs every answer, keeps its books, and its admin API
and fault modes behave as docs/providers/wechatpay.md says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.providers.rsa_keys import KeyRing, PublicKey, load_private_key
from adapters.providers.wechatpay import signing
from adapters.providers.wechatpay_sandbox import PLATFORM_KEY_ID, WechatPaySandbox
from gateway.domain.clock import FrozenClock

KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "wechatpay" / "test-keys"
MERCHANT = load_private_key(KEYS / "merchant_private_key.pem")
APIV3 = b"testAPIv3key0000wallet0gateway01"
NOW = datetime(2026, 3, 2, 10, 15, 30, tzinfo=UTC)
TRANSFER = "/v3/fund-app/mch-transfer/transfer-bills"
WANG_WEI = "oWxSandbox_WangWei_000000001"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def sandbox(clock: FrozenClock) -> WechatPaySandbox:
    return WechatPaySandbox(
        merchant_public_key=MERCHANT.public_key(),
        apiv3_key=APIV3,
        platform_key=load_private_key(KEYS / "wechatpay_public_key_private.pem"),
        clock=clock,
        processing_delay=30,
        sender=lambda url, headers, body: 204,
    )


class Merchant:
    """A signing client of the sandbox's Flask app (what the adapter does, by hand)."""

    def __init__(self, sandbox: WechatPaySandbox, clock: FrozenClock) -> None:
        self.client = sandbox.app.test_client()
        self.clock = clock
        self.keys = KeyRing({PLATFORM_KEY_ID: PublicKey(sandbox.platform_key.public_key())})
        self.counter = 0

    def headers(self, method: str, url: str, body: bytes, *, key: Any = MERCHANT) -> dict[str, str]:
        self.counter += 1
        return {
            "Authorization": signing.authorization(
                mchid="1900000001",
                serial_no="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
                key=key,
                method=method,
                url=url,
                body=body,
                timestamp=int(self.clock.now().timestamp()),
                nonce_str=f"NONCE{self.counter:08d}",
            ),
            "Content-Type": "application/json",
        }

    def call(self, method: str, url: str, document: Any = None, **options: Any) -> Any:
        body = json.dumps(document, ensure_ascii=False).encode() if document is not None else b""
        headers = options.pop("headers", None) or self.headers(method, url, body, **options)
        response = self.client.open(url, method=method, data=body or None, headers=headers)
        # Every answer, errors included, carries WeChat Pay's signature.
        signing.verify(dict(response.headers), response.data, self.keys, now=self.clock.now())
        return response


@pytest.fixture
def merchant(sandbox: WechatPaySandbox, clock: FrozenClock) -> Merchant:
    return Merchant(sandbox, clock)


def transfer(out_bill_no: str = "po01test0000000000000000001", **changes: Any) -> dict[str, Any]:
    body = {
        "appid": "wxd678efh567hg6787",
        "out_bill_no": out_bill_no,
        "transfer_scene_id": "1000",
        "openid": WANG_WEI,
        "transfer_amount": 10000,
        "transfer_remark": "test",
        "notify_url": "http://gateway.test/v1/providers/wechatpay/webhooks",
    }
    body.update(changes)
    return body


def test_a_transfer_is_accepted_then_settles_and_notifies(
    sandbox: WechatPaySandbox, merchant: Merchant, clock: FrozenClock
) -> None:
    answer = merchant.call("POST", TRANSFER, transfer())
    assert (answer.status_code, answer.json["state"]) == (200, "ACCEPTED")
    again = merchant.call("POST", TRANSFER, transfer())  # the same out_bill_no: the same bill
    assert again.json["transfer_bill_no"] == answer.json["transfer_bill_no"]
    clock.advance(seconds=30)
    query = merchant.call("GET", f"{TRANSFER}/out-bill-no/po01test0000000000000000001")
    assert (query.json["state"], query.json["transfer_amount"]) == ("SUCCESS", 10000)
    assert sandbox.balance(WANG_WEI) == 10000
    sent: list[tuple[dict[str, str], bytes]] = []
    sandbox.deliver_callbacks(lambda url, headers, body: sent.append((headers, body)) or 204)
    headers, body = sent[0]
    opened = signing.verify(headers, body, merchant.keys, now=clock.now())
    assert opened.serial == PLATFORM_KEY_ID
    envelope = json.loads(body)
    resource = json.loads(
        signing.decrypt_resource(
            APIV3,
            nonce_str=envelope["resource"]["nonce"],
            associated_data=envelope["resource"]["associated_data"],
            ciphertext=envelope["resource"]["ciphertext"],
        )
    )
    assert (envelope["event_type"], resource["state"]) == ("MCHTRANSFER.BILL.FINISHED", "SUCCESS")


@pytest.mark.parametrize(
    "tamper",
    ["unsigned", "wrong_key", "stale", "replayed_nonce", "wrong_serial", "changed_body"],
)
def test_requests_that_are_not_the_merchants_are_refused(
    sandbox: WechatPaySandbox, merchant: Merchant, clock: FrozenClock, tamper: str
) -> None:
    body = json.dumps(transfer()).encode()
    headers = merchant.headers("POST", TRANSFER, body)
    if tamper == "unsigned":
        headers.pop("Authorization")
    elif tamper == "wrong_key":
        headers = merchant.headers(
            "POST", TRANSFER, body, key=load_private_key(KEYS / "platform_private_key.pem")
        )
    elif tamper == "stale":
        clock.advance(minutes=6)
    elif tamper == "replayed_nonce":
        assert merchant.client.post(TRANSFER, data=body, headers=headers).status_code == 200
    elif tamper == "wrong_serial":
        headers["Authorization"] = headers["Authorization"].replace("5157F09E", "0000F09E")
    else:
        body = json.dumps(transfer(transfer_amount=99999)).encode()
    response = merchant.client.post(TRANSFER, data=body, headers=headers)
    assert (response.status_code, response.json["code"]) == (401, "SIGN_ERROR")
    assert len(sandbox.ledger.bills) == (1 if tamper == "replayed_nonce" else 0)


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"openid": "o-nobody"}, 400, "INVALID_REQUEST"),
        ({"appid": "wx-other"}, 400, "APPID_MCHID_NOT_MATCH"),
        ({"transfer_amount": 10.5}, 400, "PARAM_ERROR"),
        ({"out_bill_no": "po_01"}, 400, "PARAM_ERROR"),
        ({"transfer_amount": 200000}, 400, "PARAM_ERROR"),  # 2,000.00 needs the name
    ],
)
def test_refusals(merchant: Merchant, changes: dict[str, Any], status: int, code: str) -> None:
    response = merchant.call("POST", TRANSFER, transfer(**changes))
    assert (response.status_code, response.json["code"]) == (status, code)


def test_the_merchants_operating_account_must_cover_it(
    sandbox: WechatPaySandbox, merchant: Merchant
) -> None:
    sandbox.ledger.merchant_balance = 9999
    response = merchant.call("POST", TRANSFER, transfer())
    assert (response.status_code, response.json["code"]) == (403, "NOT_ENOUGH")


def test_an_out_bill_no_reused_with_other_details_is_refused(merchant: Merchant) -> None:
    merchant.call("POST", TRANSFER, transfer())
    response = merchant.call("POST", TRANSFER, transfer(transfer_amount=20000))
    assert (response.status_code, response.json["code"]) == (400, "INVALID_REQUEST")


def test_the_name_must_be_encrypted_to_the_platform_key(
    sandbox: WechatPaySandbox, merchant: Merchant
) -> None:
    public = sandbox.platform_key.public_key()
    body = transfer(transfer_amount=250000, user_name=signing.encrypt_sensitive(public, "王伟"))
    raw = json.dumps(body, ensure_ascii=False).encode()
    without_serial = merchant.call(
        "POST", TRANSFER, headers=merchant.headers("POST", TRANSFER, raw), document=body
    )
    assert without_serial.json["code"] == "PARAM_ERROR"
    headers = {**merchant.headers("POST", TRANSFER, raw), "Wechatpay-Serial": PLATFORM_KEY_ID}
    accepted = merchant.call("POST", TRANSFER, document=body, headers=headers)
    assert accepted.status_code == 200
    assert sandbox.ledger.bills[body["out_bill_no"]].user_name == "王伟"


def test_refunds_of_a_seeded_payment(
    sandbox: WechatPaySandbox, merchant: Merchant, clock: FrozenClock
) -> None:
    payment = merchant.call(
        "GET", "/v3/pay/transactions/id/4200000000202603020000000001?mchid=1900000001"
    )
    assert (payment.json["trade_state"], payment.json["amount"]["total"]) == ("SUCCESS", 10000)
    refund = {
        "out_refund_no": "rf_test_1",
        "transaction_id": "4200000000202603020000000001",
        "amount": {"refund": 2500, "total": 10000, "currency": "CNY"},
    }
    assert (
        merchant.call("POST", "/v3/refund/domestic/refunds", refund).json["status"] == "PROCESSING"
    )
    too_much = {**refund, "out_refund_no": "rf_test_2", "amount": {"refund": 9000, "total": 10000}}
    assert (
        merchant.call("POST", "/v3/refund/domestic/refunds", too_much).json["code"]
        == "INVALID_REQUEST"
    )
    clock.advance(seconds=30)
    assert merchant.call("GET", "/v3/refund/domestic/refunds/rf_test_1").json["status"] == "SUCCESS"
    missing = merchant.call("GET", "/v3/refund/domestic/refunds/rf_nope")
    assert (missing.status_code, missing.json["code"]) == (404, "RESOURCE_NOT_EXISTS")


def test_fault_modes(sandbox: WechatPaySandbox, merchant: Merchant) -> None:
    sandbox.inject("transfer", "reject", status=403, code="NO_AUTH")
    assert merchant.call("POST", TRANSFER, transfer()).json["code"] == "NO_AUTH"
    sandbox.inject("transfer", "unavailable")
    assert merchant.call("POST", TRANSFER, transfer()).status_code == 429
    sandbox.inject("transfer", "error")
    assert merchant.call("POST", TRANSFER, transfer()).status_code == 500
    assert len(sandbox.ledger.bills) == 1  # `error` carried it out before answering
    sandbox.inject("transfer_status", "bad_signature")
    response = merchant.client.get(
        f"{TRANSFER}/out-bill-no/po01test0000000000000000001",
        headers=merchant.headers("GET", f"{TRANSFER}/out-bill-no/po01test0000000000000000001", b""),
    )
    with pytest.raises(signing.SignatureError):
        signing.verify(dict(response.headers), response.data, merchant.keys, now=NOW)
    with pytest.raises(ValueError, match="transfers only"):
        sandbox.inject("refund", "fail")


def test_admin_api(sandbox: WechatPaySandbox, clock: FrozenClock) -> None:
    admin = sandbox.app.test_client()
    assert admin.get("/sandbox").json["platform_key_id"] == PLATFORM_KEY_ID
    assert "BEGIN PUBLIC KEY" in admin.get("/sandbox/keys").json["data"][0]["pem"]
    created = admin.post("/sandbox/faults", json={"operation": "transfer", "mode": "drop"})
    assert created.status_code == 201
    assert admin.get("/sandbox/faults").json["data"][0]["mode"] == "drop"
    assert admin.delete(f"/sandbox/faults/{created.json['id']}").status_code == 204
    assert (
        admin.post("/sandbox/faults", json={"mode": "nonsense", "operation": "x"}).status_code
        == 400
    )
    user = admin.post(
        "/sandbox/users", json={"openid": "o-new", "name": "新人", "auto_receive": False}
    )
    assert user.status_code == 201
    assert admin.get("/sandbox/users/o-new").json["auto_receive"] is False
    assert admin.get("/sandbox/users/o-none").status_code == 404
    payment = admin.post("/sandbox/payments", json={"openid": "o-new", "total_fen": 500})
    assert payment.json["amount"]["total"] == 500
    assert admin.post("/sandbox/reset").json["users"] == 5


def test_the_confirmation_window(
    sandbox: WechatPaySandbox, merchant: Merchant, clock: FrozenClock
) -> None:
    answer = merchant.call("POST", TRANSFER, transfer(openid="oWxSandbox_LiuYang_000000004"))
    assert answer.json["state"] == "WAIT_USER_CONFIRM" and answer.json["package_info"]
    clock.advance(hours=24, seconds=1)
    bill = sandbox.bill("po01test0000000000000000001")
    assert bill is not None and (bill.state, bill.fail_reason) == ("CANCELLED", "OVERDUE_CLOSE")


def test_from_files_publishes_the_platform_key(tmp_path: Path) -> None:
    WechatPaySandbox.from_files(keys_dir=tmp_path, apiv3_key=APIV3)
    published = KeyRing(directory=tmp_path / "platform-keys")
    assert published.ids() == [PLATFORM_KEY_ID]
    assert (tmp_path / "merchant_private_key.pem").is_file()
    again = WechatPaySandbox.from_files(keys_dir=tmp_path, apiv3_key=APIV3)  # keys kept
    assert published.get(PLATFORM_KEY_ID) is not None
    assert again.platform_key.public_key().public_numbers() == (
        load_private_key(tmp_path / "sandbox" / "platform_private_key.pem")
        .public_key()
        .public_numbers()
    )
