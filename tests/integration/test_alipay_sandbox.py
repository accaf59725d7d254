"""The Alipay sandbox on its own (its Flask app, no network): it checks the application's RSA2
signatures and the public parameters as Alipay does, signs its answers over their exact text,
keeps its books, sends signed notifications until it hears `success`, and its admin API and
fault modes behave as docs/providers/alipay.md says."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from adapters.providers.alipay import signing, webhooks
from adapters.providers.alipay_sandbox import AlipaySandbox
from adapters.providers.rsa_keys import KeyRing, PublicKey, load_private_key
from gateway.domain.clock import FrozenClock

KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "alipay" / "test-keys"
APP_KEY = load_private_key(KEYS / "app_private_key.pem")
NOW = datetime(2026, 3, 2, 10, 15, 30, tzinfo=UTC)
CST = timezone(timedelta(hours=8))
TRANSFER = "alipay.fund.trans.uni.transfer"
QUERY = "alipay.fund.trans.common.query"
WANG_WEI = "2088102000000001"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def sandbox(clock: FrozenClock) -> AlipaySandbox:
    return AlipaySandbox(
        app_public_key=APP_KEY.public_key(),
        alipay_key=load_private_key(KEYS / "alipay_private_key.pem"),
        clock=clock,
        processing_delay=30,
    )


class App:
    """A signing client of the sandbox's Flask app (what the adapter does, by hand)."""

    def __init__(self, sandbox: AlipaySandbox, clock: FrozenClock) -> None:
        self.client = sandbox.app.test_client()
        self.clock = clock
        self.keys = [PublicKey(sandbox.alipay_key.public_key())]

    def params(self, method: str, biz: dict[str, Any], **changes: str) -> dict[str, str]:
        params = {
            "app_id": "2021000100000001",
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": self.clock.now().astimezone(CST).strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False),
            "notify_url": "http://gateway.test/v1/providers/alipay/webhooks",
        }
        params.update(changes)
        params["sign"] = signing.sign_params(APP_KEY, params)
        return params

    def post(self, params: dict[str, str], *, verify: bool = True) -> dict[str, Any]:
        response = self.client.post("/gateway.do", data=urlencode(params),
                                    content_type="application/x-www-form-urlencoded")  # fmt: skip
        assert response.status_code == 200
        value = signing.response_value(response.data, params.get("method", "x"))
        if verify:
            signing.verify_response(value, self.keys)
        return value.value

    def call(self, method: str, biz: dict[str, Any], **changes: str) -> dict[str, Any]:
        return self.post(self.params(method, biz, **changes))


@pytest.fixture
def app(sandbox: AlipaySandbox, clock: FrozenClock) -> App:
    return App(sandbox, clock)


def transfer(out_biz_no: str = "po01test0001", **changes: Any) -> dict[str, Any]:
    biz: dict[str, Any] = {
        "out_biz_no": out_biz_no,
        "trans_amount": "100.00",
        "product_code": "TRANS_ACCOUNT_NO_PWD",
        "biz_scene": "DIRECT_TRANSFER",
        "order_title": "test",
        "payee_info": {"identity": WANG_WEI, "identity_type": "ALIPAY_USER_ID"},
    }
    biz.update(changes)
    return biz


def test_a_transfer_deals_then_settles_and_notifies(
    sandbox: AlipaySandbox, app: App, clock: FrozenClock
) -> None:
    first = app.call(TRANSFER, transfer())
    assert (first["code"], first["status"]) == ("10000", "DEALING")
    assert app.call(TRANSFER, transfer())["order_id"] == first["order_id"]  # idempotent
    clock.advance(seconds=30)
    query = app.call(QUERY, {"out_biz_no": "po01test0001", "product_code": "TRANS_ACCOUNT_NO_PWD",
                             "biz_scene": "DIRECT_TRANSFER"})  # fmt: skip
    assert (query["status"], query["trans_amount"]) == ("SUCCESS", "100.00")
    assert sandbox.balance(WANG_WEI) == 10000

    answers = iter([(500, b""), (200, b"fail"), (200, b"success")])
    sandbox.outbox.retry = timedelta(0)
    delivered = []
    for _ in range(3):
        delivered += sandbox.deliver_callbacks(lambda url, headers, body: next(answers))
    record = delivered[-1]
    assert (record.statuses, record.delivered) == ([500, 200, 200], True)  # until `success`
    keys = KeyRing({"alipay": app.keys[0]})
    params = webhooks.verify(
        "POST", record.headers, record.body, keys=keys, app_id="2021000100000001", now=clock.now()
    )
    assert json.loads(params["biz_content"])["status"] == "SUCCESS"


@pytest.mark.parametrize(
    ("changes", "sub_code"),
    [
        ({"sign": "AAAA"}, "isv.invalid-signature"),
        ({"app_id": "2021000199999999"}, "isv.invalid-app-id"),
        ({"sign_type": "RSA"}, "isv.invalid-signature-type"),
        ({"timestamp": "2026-03-02 08:00:00"}, "isv.invalid-timestamp"),
        ({"method": "alipay.nothing"}, "isv.invalid-method"),
    ],
)
def test_calls_that_are_not_the_applications_are_refused_unsigned(
    sandbox: AlipaySandbox, app: App, changes: dict[str, str], sub_code: str
) -> None:
    params = app.params(TRANSFER, transfer())
    if "sign" in changes:
        params.update(changes)
    else:
        method = changes.pop("method", TRANSFER)
        params = app.params(method, transfer(), **changes)
    value = app.post(params, verify=False)
    assert (value["code"], value["sub_code"]) == ("40002", sub_code)
    assert sandbox.ledger.orders == {}


def payee(identity: str, kind: str = "ALIPAY_USER_ID", **extra: str) -> dict[str, Any]:
    return transfer(payee_info={"identity": identity, "identity_type": kind, **extra})


@pytest.mark.parametrize(
    ("biz", "sub_code"),
    [
        (payee("2088000000000000"), "PAYEE_NOT_EXIST"),
        (payee("wangwei@example.com", "ALIPAY_LOGON_ID"), "PAYEE_USER_INFO_ERROR"),
        (payee("wangwei@example.com", "ALIPAY_LOGON_ID", name="王五"), "PAYEE_USER_INFO_ERROR"),
        (payee("2088102000000003"), "PAYEE_ACCOUNT_STATUS_ERROR"),
        (payee("2088102000000004"), "PAYEE_NOT_RELNAME_CERTIFY"),
        (transfer(trans_amount="0.01"), "EXCEED_LIMIT_SM_MIN_AMOUNT"),
        (transfer(trans_amount="1.5"), "INVALID_PARAMETER"),
        (transfer(product_code="OTHER"), "INVALID_PARAMETER"),
    ],
)
def test_business_refusals_are_signed(app: App, biz: dict[str, Any], sub_code: str) -> None:
    value = app.call(TRANSFER, biz)
    assert (value["code"], value["sub_code"]) == ("40004", sub_code)


def test_the_payer_balance_must_cover_it(sandbox: AlipaySandbox, app: App) -> None:
    sandbox.ledger.merchant_balance = 9999
    assert app.call(TRANSFER, transfer())["sub_code"] == "PAYER_BALANCE_NOT_ENOUGH"


def test_answers_are_signed_over_their_own_spacing(app: App, sandbox: AlipaySandbox) -> None:
    params = app.params(TRANSFER, transfer())
    raw = (
        sandbox.app.test_client()
        .post(
            "/gateway.do", data=urlencode(params), content_type="application/x-www-form-urlencoded"
        )
        .data
    )
    value = signing.response_value(raw, TRANSFER)
    assert b'"code": "10000"' in value.raw  # Alipay's spacing, not the compact form
    signing.verify_response(value, app.keys)


def test_parameters_may_come_in_the_query_string(sandbox: AlipaySandbox, app: App) -> None:
    params = app.params(TRANSFER, transfer())
    biz = params.pop("biz_content")
    response = sandbox.app.test_client().post(
        "/gateway.do?" + urlencode(params), data=urlencode({"biz_content": biz}),
        content_type="application/x-www-form-urlencoded",
    )  # fmt: skip
    assert signing.response_value(response.data, TRANSFER).value["code"] == "10000"


def test_refunds(sandbox: AlipaySandbox, app: App) -> None:
    biz = {"trade_no": "2026030222001400000000000001", "refund_amount": "25.00",
           "out_request_no": "rf_1"}  # fmt: skip
    first = app.call("alipay.trade.refund", biz)
    assert (first["fund_change"], first["refund_fee"]) == ("Y", "25.00")
    assert app.call("alipay.trade.refund", biz)["fund_change"] == "N"
    conflict = app.call("alipay.trade.refund", {**biz, "refund_amount": "30.00"})
    assert conflict["sub_code"] == "ACQ.DISCORDANT_REPEAT_REQUEST"
    over = app.call(
        "alipay.trade.refund", {**biz, "out_request_no": "rf_2", "refund_amount": "90.00"}
    )
    assert over["sub_code"] == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    query = app.call("alipay.trade.fastpay.refund.query",
                     {"trade_no": biz["trade_no"], "out_request_no": "rf_1"})  # fmt: skip
    assert query["refund_status"] == "REFUND_SUCCESS"
    none = app.call("alipay.trade.fastpay.refund.query",
                    {"trade_no": biz["trade_no"], "out_request_no": "rf_9"})  # fmt: skip
    assert "refund_status" not in none
    assert len(sandbox.pending_callbacks()) == 1  # one trade_status_sync for the refund


def test_fault_modes(sandbox: AlipaySandbox, app: App) -> None:
    sandbox.inject("transfer", "reject", sub_code="PAYER_BALANCE_NOT_ENOUGH")
    assert app.call(TRANSFER, transfer())["sub_code"] == "PAYER_BALANCE_NOT_ENOUGH"
    sandbox.inject("transfer", "error")
    assert app.call(TRANSFER, transfer())["code"] == "20000"
    assert "po01test0001" in sandbox.ledger.orders  # carried out before the error
    sandbox.inject("transfer_query", "unavailable")
    params = app.params(QUERY, {"out_biz_no": "po01test0001"})
    assert sandbox.app.test_client().post("/gateway.do", data=urlencode(params),
           content_type="application/x-www-form-urlencoded").status_code == 503  # fmt: skip
    sandbox.inject("transfer_query", "bad_signature")
    with pytest.raises(signing.SignatureError):
        app.call(QUERY, {"out_biz_no": "po01test0001"})


def test_admin_api(sandbox: AlipaySandbox) -> None:
    admin = sandbox.app.test_client()
    assert admin.get("/sandbox").json["app_id"] == "2021000100000001"
    assert "BEGIN PUBLIC KEY" in admin.get("/sandbox/keys").json["alipay_public_key"]
    rule = admin.post("/sandbox/faults", json={"operation": "transfer", "mode": "drop_callback"})
    assert rule.status_code == 201
    assert admin.delete(f"/sandbox/faults/{rule.json['id']}").status_code == 204
    assert (
        admin.post("/sandbox/faults", json={"operation": "refund", "mode": "fail"}).status_code
        == 400
    )
    account = admin.post("/sandbox/accounts", json={"user_id": "2088999900000001", "name": "新人",
                                                    "logon_ids": ["new@example.com"]})  # fmt: skip
    assert account.status_code == 201
    assert admin.get("/sandbox/accounts/2088999900000001").json["name"] == "新人"
    trade = admin.post(
        "/sandbox/trades", json={"user_id": "2088999900000001", "total_amount": "8.00"}
    )
    assert trade.json["total_amount"] == "8.00"
    assert admin.post("/sandbox/reset").json["accounts"] == 5


def test_from_files_publishes_the_alipay_key(tmp_path: Path) -> None:
    AlipaySandbox.from_files(keys_dir=tmp_path)
    assert (tmp_path / "app_private_key.pem").is_file()
    published = KeyRing(directory=tmp_path / "alipay-public-keys")
    assert published.ids() == ["alipay_public_key"]


# --- certificate mode (公钥证书) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ca_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sandbox certification authority for the module (its RSA keys take a while)."""
    home = tmp_path_factory.mktemp("alipay-sandbox-ca")
    (home / "app_private_key.pem").write_bytes((KEYS / "app_private_key.pem").read_bytes())
    (home / "sandbox").mkdir()
    (home / "sandbox" / "alipay_private_key.pem").write_bytes(
        (KEYS / "alipay_private_key.pem").read_bytes()
    )
    AlipaySandbox.from_files(keys_dir=home, certificate_mode=True)
    return home


@pytest.fixture
def certified(ca_home: Path, tmp_path: Path, clock: FrozenClock) -> AlipaySandbox:
    """A certificate-mode sandbox publishing the console's files in `tmp_path`."""
    return AlipaySandbox.from_files(
        keys_dir=ca_home, certificate_mode=True, certs_dir=tmp_path, clock=clock
    )


def cert_params(sandbox: AlipaySandbox) -> dict[str, str]:
    assert sandbox.certificates is not None
    return {
        "app_cert_sn": sandbox.certificates.app_cert_sn,
        "alipay_root_cert_sn": sandbox.certificates.alipay_root_cert_sn,
    }


def test_certificate_mode_publishes_the_consoles_files(
    certified: AlipaySandbox, tmp_path: Path
) -> None:
    """The files the gateway is configured with, and the SNs the sandbox expects: the
    adapter's own reading of the files (certificates.py) gives the same SNs, and the root
    chain's ECDSA root is left out of alipay_root_cert_sn."""
    from cryptography import x509
    from cryptography.x509.oid import SignatureAlgorithmOID

    from adapters.providers.alipay import certificates

    bundle = certified.certificates
    assert bundle is not None
    app_file = tmp_path / "appCertPublicKey_2021000100000001.crt"
    assert certificates.load_app_certificate(app_file, APP_KEY) == bundle.app_cert_sn
    roots = x509.load_pem_x509_certificates((tmp_path / "alipayRootCert.crt").read_bytes())
    assert SignatureAlgorithmOID.ECDSA_WITH_SHA256 in {c.signature_algorithm_oid for c in roots}
    root_sn = certificates.load_root_cert_sn(tmp_path / "alipayRootCert.crt")
    assert root_sn == bundle.alipay_root_cert_sn
    assert len(roots) == 3 and len(root_sn.split("_")) == 2
    alipay_file = tmp_path / "alipay-certs" / "alipayCertPublicKey_RSA2.crt"
    assert len(x509.load_pem_x509_certificates(alipay_file.read_bytes())) == 2  # + intermediate
    assert certificates.load_alipay_certificate(alipay_file)[0] == bundle.alipay_cert_sn


def test_a_restart_keeps_the_published_certificates(
    ca_home: Path, certified: AlipaySandbox, tmp_path: Path
) -> None:
    assert certified.certificates is not None
    restarted = AlipaySandbox.from_files(
        keys_dir=ca_home, certificate_mode=True, certs_dir=tmp_path
    )
    assert restarted.certificates is not None
    assert (restarted.certificates.app_cert_sn, restarted.certificates.alipay_cert_sn) == (
        certified.certificates.app_cert_sn,
        certified.certificates.alipay_cert_sn,
    )


@pytest.mark.parametrize(
    ("changes", "sub_code"),
    [
        ({"app_cert_sn": ""}, "isv.missing-app-cert-sn"),
        ({"app_cert_sn": "0" * 32}, "isv.app-cert-not-exist"),
        ({"alipay_root_cert_sn": ""}, "isv.missing-alipay-root-cert-sn"),
        ({"alipay_root_cert_sn": "0" * 32}, "isv.invalid-alipay-root-cert-sn"),
    ],
)
def test_certificate_mode_refuses_missing_or_wrong_sns_unsigned(
    certified: AlipaySandbox, clock: FrozenClock, changes: dict[str, str], sub_code: str
) -> None:
    app = App(certified, clock)
    params = app.params(TRANSFER, transfer(), **{**cert_params(certified), **changes})
    response = certified.app.test_client().post(
        "/gateway.do", data=urlencode(params), content_type="application/x-www-form-urlencoded"
    )
    value = signing.response_value(response.data, TRANSFER)
    assert (value.value["code"], value.value["sub_code"], value.sign) == ("40002", sub_code, None)
    assert certified.ledger.orders == {}


def test_a_root_sn_counting_the_ecdsa_root_is_invalid(
    certified: AlipaySandbox, clock: FrozenClock
) -> None:
    assert certified.certificates is not None
    every = "_".join(
        hashlib.md5((c.issuer.rfc4514_string() + str(c.serial_number)).encode()).hexdigest()
        for c in certified.certificates.pki.roots
    )
    app = App(certified, clock)
    params = app.params(
        TRANSFER, transfer(), **{**cert_params(certified), "alipay_root_cert_sn": every}
    )
    assert app.post(params, verify=False)["sub_code"] == "isv.invalid-alipay-root-cert-sn"


def test_certificate_mode_answers_name_the_signing_certificate(
    certified: AlipaySandbox, clock: FrozenClock, tmp_path: Path
) -> None:
    app = App(certified, clock)
    bundle = certified.certificates
    assert bundle is not None
    raw = (
        certified.app.test_client()
        .post(
            "/gateway.do",
            data=urlencode(app.params(TRANSFER, transfer(), **cert_params(certified))),
            content_type="application/x-www-form-urlencoded",
        )
        .data
    )
    value = signing.response_value(raw, TRANSFER)
    assert (value.value["code"], value.cert_sn) == ("10000", bundle.alipay_cert_sn)
    signing.verify_response(value, app.keys)
    signed_by = PublicKey(bundle.app_public_key())
    assert signed_by.key.public_numbers() == APP_KEY.public_key().public_numbers()

    # A rotation: a new key and certificate, published next to the old one.
    admin = certified.app.test_client()
    new_sn = admin.post("/sandbox/certificates/rotate").json["alipay_cert_sn"]
    assert new_sn != value.cert_sn
    assert admin.get("/sandbox/keys").json["certificates"]["alipay_cert_sn"] == new_sn
    assert len(list((tmp_path / "alipay-certs").glob("*.crt"))) == 2
    raw = (
        certified.app.test_client()
        .post(
            "/gateway.do",
            data=urlencode(
                app.params(QUERY, {"out_biz_no": "po01test0001"}, **cert_params(certified))
            ),
            content_type="application/x-www-form-urlencoded",
        )
        .data
    )
    rotated = signing.response_value(raw, QUERY)
    assert rotated.cert_sn == new_sn
    with pytest.raises(signing.SignatureError):
        signing.verify_response(rotated, app.keys)  # the old key no longer signs
    signing.verify_response(rotated, [PublicKey(certified.alipay_key.public_key())])


def test_the_embedded_sandbox_runs_in_the_adapters_signing_mode(
    settings: Any, tmp_path: Path
) -> None:
    """`serve` without an Alipay base URL in certificate mode: the embedded sandbox issues the
    console's files where the adapter reads them, and a payout signed with the SNs is paid."""
    from adapters.base import AccountIdentifier, PayoutRequest
    from adapters.providers.registry import ProviderRegistry, start_embedded_sandboxes
    from gateway.domain.money import Money
    from tests.net import free_port

    local = settings.model_copy(update={"data_dir": tmp_path, "providers": ["alipay"]})
    mode = {"signing_mode": "certificate", "simulator_port": free_port()}
    with pytest.MonkeyPatch.context() as env:
        for name, value in mode.items():
            env.setenv(f"GATEWAY_ALIPAY_{name.upper()}", str(value))
        running = start_embedded_sandboxes(local)
        try:
            adapter = ProviderRegistry.from_settings(local).get("alipay")
            result = adapter.payout(
                PayoutRequest(
                    reference="po_embeddedcert1",
                    idempotency_key="poembeddedcert1",
                    amount=Money.parse("1.00", "CNY"),
                    recipient=AccountIdentifier("alipay_user_id", "2088102000000001"),
                )
            )
        finally:
            for _provider, sandbox in running:
                sandbox.shutdown()
    assert result.state in ("succeeded", "pending"), result
    assert (tmp_path / "alipay-sandbox" / "certs" / "alipayRootCert.crt").exists()
