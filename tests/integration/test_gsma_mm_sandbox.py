"""The GSMA Mobile Money sandbox (adapters/providers/gsma_mm_sandbox): the API as the
specification describes it, its ledger of wallets, asynchronous callbacks, injected failures
and the admin API. Driven through Flask's test client on a frozen clock (no sockets)."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from adapters.providers.gsma_mm_sandbox import GsmaMmSandbox
from gateway.domain.clock import FrozenClock

KEY = "sandbox-key"
CALLBACK = "http://gateway.test/v1/providers/gsma_mm/webhooks"


class Sent(list[tuple[str, dict[str, str], bytes]]):
    """A callback sender that records what it was given and answers `status`."""

    status = 204

    def __call__(self, url: str, headers: dict[str, str], body: bytes) -> int:
        self.append((url, headers, body))
        return self.status


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def sandbox(clock: FrozenClock, sent: Sent) -> GsmaMmSandbox:
    return GsmaMmSandbox(
        clock=clock,
        api_key=KEY,
        callback_api_key="cb-key",
        processing_delay=10,
        sender=sent,
    )


@pytest.fixture
def http(sandbox: GsmaMmSandbox) -> Iterator[Any]:
    with sandbox.app.test_client() as client:
        yield client


def disburse(
    http: Any,
    *,
    amount: str = "100.00",
    msisdn: str = "+254712345601",
    correlation: str | None = None,
    key: str = KEY,
    callback: str | None = CALLBACK,
) -> Any:
    headers = {"X-API-Key": key, "X-CorrelationID": correlation or str(uuid.uuid4())}
    if callback:
        headers["X-Callback-URL"] = callback
    return http.post(
        "/transactions/type/disbursement",
        headers=headers,
        json={
            "amount": amount,
            "currency": "KES",
            "creditParty": [{"key": "msisdn", "value": msisdn}],
            "debitParty": [{"key": "accountid", "value": "2999"}],
            "requestingOrganisationTransactionReference": "po_test",
        },
    )


def test_a_disbursement_is_accepted_then_completes_and_calls_back(
    http: Any, sandbox: GsmaMmSandbox, clock: FrozenClock, sent: Sent
) -> None:
    correlation = str(uuid.uuid4())
    answer = disburse(http, correlation=correlation)
    assert answer.status_code == 202
    state = answer.get_json()
    assert state["status"] == "pending" and state["notificationMethod"] == "callback"

    assert sandbox.deliver_callbacks() == []  # not done yet
    clock.advance(timedelta(seconds=10))
    delivered = sandbox.deliver_callbacks()

    assert len(delivered) == 1 and delivered[0].statuses == [204]
    url, headers, body = sent[0]
    assert url == CALLBACK
    assert headers["X-CorrelationID"] == correlation
    assert headers["X-API-Key"] == "cb-key"
    assert headers["X-Content-Hash"] == hashlib.sha256(body).hexdigest()
    transaction = json.loads(body)
    assert transaction["transactionStatus"] == "completed"
    assert transaction["requestingOrganisationTransactionReference"] == "po_test"
    assert sandbox.wallet_balance("+254712345601") == Decimal("1600.00")

    polled = http.get(f"/requeststates/{state['serverCorrelationId']}", headers={"X-API-Key": KEY})
    assert polled.get_json()["objectReference"] == transaction["transactionReference"]
    looked_up = http.get(f"/responses/{correlation}", headers={"X-API-Key": KEY}).get_json()
    assert looked_up == {"link": f"/transactions/{transaction['transactionReference']}"}
    fetched = http.get(looked_up["link"], headers={"X-API-Key": KEY}).get_json()
    assert fetched["transactionStatus"] == "completed"


def test_the_correlation_id_makes_a_post_idempotent(http: Any, sandbox: GsmaMmSandbox) -> None:
    correlation = str(uuid.uuid4())
    first = disburse(http, correlation=correlation).get_json()
    again = disburse(http, correlation=correlation).get_json()
    changed = disburse(http, correlation=correlation, amount="5.00")

    assert again["serverCorrelationId"] == first["serverCorrelationId"]
    assert len(sandbox.ledger.disbursements) == 1
    assert changed.status_code == 400
    assert changed.get_json()["errorCode"] == "duplicateRequest"


@pytest.mark.parametrize(
    ("change", "category", "code", "status"),
    [
        ({"key": "wrong"}, "authorisation", "clientAuthorisationError", 401),
        ({"correlation": "po_not_a_uuid"}, "validation", "formatError", 400),
        ({"amount": "1.23456"}, "validation", "formatError", 400),
        ({"amount": "0"}, "validation", "negativeValue", 400),
    ],
)
def test_requests_are_checked(
    http: Any, change: dict[str, str], category: str, code: str, status: int
) -> None:
    answer = disburse(http, **change)
    assert answer.status_code == status
    assert (answer.get_json()["errorCategory"], answer.get_json()["errorCode"]) == (category, code)


@pytest.mark.parametrize(
    ("msisdn", "code"),
    [
        ("+254799999999", "identifierError"),  # no such wallet
        ("+254712345603", "requestDeclined"),  # blocked
        ("+254712345604", "maxBalanceExceeded"),  # 9000 + 2000 > 10000
    ],
)
def test_the_ledger_decides_failures(
    http: Any, sandbox: GsmaMmSandbox, clock: FrozenClock, sent: Sent, msisdn: str, code: str
) -> None:
    state = disburse(http, msisdn=msisdn, amount="2000.00").get_json()
    clock.advance(timedelta(seconds=10))
    sandbox.deliver_callbacks()

    assert json.loads(sent[0][2])["errorCode"] == code
    polled = http.get(f"/requeststates/{state['serverCorrelationId']}", headers={"X-API-Key": KEY})
    assert polled.get_json()["status"] == "failed"
    assert polled.get_json()["error"]["errorCode"] == code


@pytest.mark.parametrize(
    ("mode", "options", "status", "code"),
    [
        ("reject", {"category": "businessRule", "code": "insufficientFunds"}, 400,
         "insufficientFunds"),
        ("unavailable", {}, 503, "genericError"),
        ("error", {}, 500, "genericError"),
    ],
)  # fmt: skip
def test_injected_answers(
    http: Any, sandbox: GsmaMmSandbox, mode: str, options: dict[str, str], status: int, code: str
) -> None:
    sandbox.inject("disbursement", mode, **options)
    answer = disburse(http)
    assert (answer.status_code, answer.get_json()["errorCode"]) == (status, code)
    # "error" carries the request out before answering: its outcome is unknown to the caller.
    assert len(sandbox.ledger.disbursements) == (1 if mode == "error" else 0)
    assert disburse(http).status_code == 202  # the fault applied once


def test_injected_async_behaviours(
    http: Any, sandbox: GsmaMmSandbox, clock: FrozenClock, sent: Sent
) -> None:
    sandbox.inject("disbursement", "fail", category="authorisation", code="requestDeclined")
    sandbox.inject("disbursement", "drop_callback")
    sandbox.inject("disbursement", "duplicate_callback")
    sandbox.inject("disbursement", "forged_callback")
    sandbox.inject("disbursement", "succeed_late", seconds=60)
    states = [disburse(http).get_json() for _ in range(5)]

    clock.advance(timedelta(seconds=10))
    sandbox.deliver_callbacks()
    by_correlation: dict[str, list[dict[str, str]]] = {}
    for _url, headers, _body in sent:
        by_correlation.setdefault(headers["X-CorrelationID"], []).append(headers)
    items = [sandbox.ledger.by_server_id(state["serverCorrelationId"]) for state in states]
    failed, dropped, duplicated, forged, late = items
    assert failed is not None and failed.status == "failed"
    assert dropped is not None and dropped.correlation_id not in by_correlation
    assert duplicated is not None and len(by_correlation[duplicated.correlation_id]) == 2
    assert forged is not None
    keys = sorted(h["X-API-Key"] for h in by_correlation[forged.correlation_id])
    assert keys[0] == "cb-key" and keys[1].startswith("forged-")
    assert late is not None and late.status == "pending"
    clock.advance(timedelta(seconds=60))
    assert sandbox.disbursement(late.correlation_id).status == "completed"  # type: ignore[union-attr]


def test_a_synchronous_disbursement_is_answered_with_its_outcome(
    http: Any, sandbox: GsmaMmSandbox, clock: FrozenClock, sent: Sent
) -> None:
    """API v1.1/v1.2 synchronous mode: 201 with the completed transaction, or the error object
    with its category's status; either way the answer is the outcome and nobody calls back."""
    sandbox.inject("disbursement", "synchronous", times=3)
    correlation = str(uuid.uuid4())

    answer = disburse(http, correlation=correlation)
    replayed = disburse(http, correlation=correlation)  # the same request again: same answer
    declined = disburse(http, msisdn="+254712345603")  # the blocked wallet

    assert answer.status_code == 201
    transaction = answer.get_json()
    assert transaction["transactionStatus"] == "completed"
    assert transaction["transactionReference"].startswith("MM")
    assert transaction["requestingOrganisationTransactionReference"] == "po_test"
    assert sandbox.wallet_balance("+254712345601") == Decimal("1600.00")  # paid at once
    assert replayed.status_code == 201
    assert replayed.get_json()["transactionReference"] == transaction["transactionReference"]
    assert (declined.status_code, declined.get_json()["errorCode"]) == (401, "requestDeclined")
    assert len(sandbox.ledger.disbursements) == 2
    fetched = http.get(
        f"/transactions/{transaction['transactionReference']}", headers={"X-API-Key": KEY}
    )
    assert fetched.get_json()["transactionStatus"] == "completed"

    clock.advance(timedelta(seconds=60))
    assert sandbox.deliver_callbacks() == [] and sent == []
    assert disburse(http).status_code == 202  # the mode applied to the requests it was given for
    assert sandbox.wallet_balance("+254712345601") == Decimal("1600.00")


def test_undelivered_callbacks_are_retried(
    http: Any, sandbox: GsmaMmSandbox, clock: FrozenClock, sent: Sent
) -> None:
    sent.status = 503
    disburse(http)
    clock.advance(timedelta(seconds=10))
    assert sandbox.deliver_callbacks()[0].statuses == [503]
    sent.status = 204
    clock.advance(timedelta(seconds=2))
    assert sandbox.deliver_callbacks()[0].statuses == [503, 204]
    assert sandbox.pending_callbacks() == []


def test_name_enquiry_and_heartbeat(http: Any) -> None:
    found = http.get("/accounts/msisdn/+254712345601/accountname", headers={"X-API-Key": KEY})
    assert found.get_json()["name"]["fullName"] == "Wanjiru Kamau"
    by_wallet = http.get("/accounts/walletid/W712345601/accountname", headers={"X-API-Key": KEY})
    assert by_wallet.status_code == 200
    missing = http.get("/accounts/msisdn/+254700000000/accountname", headers={"X-API-Key": KEY})
    assert (missing.status_code, missing.get_json()["errorCategory"]) == (404, "identification")
    assert http.get("/heartbeat").get_json() == {"serviceStatus": "available"}


def test_oauth2_client_credentials(clock: FrozenClock) -> None:
    sandbox = GsmaMmSandbox(clock=clock, client_id="cid", client_secret="secret")
    http = sandbox.app.test_client()
    basic = base64.b64encode(b"cid:secret").decode()

    token = http.post(
        "/oauth/token",
        headers={"Authorization": f"Basic {basic}"},
        data={"grant_type": "client_credentials"},
    ).get_json()
    wrong = http.post(
        "/oauth/token",
        headers={"Authorization": "Basic " + base64.b64encode(b"cid:nope").decode()},
        data={"grant_type": "client_credentials"},
    )

    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    assert wrong.status_code == 401
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert http.get("/accounts/msisdn/+254712345601/accountname", headers=bearer).status_code == 200
    clock.advance(timedelta(hours=2))
    assert http.get("/accounts/msisdn/+254712345601/accountname", headers=bearer).status_code == 401


def test_admin_api(http: Any, sandbox: GsmaMmSandbox) -> None:
    rule = http.post("/sandbox/faults", json={"operation": "disbursement", "mode": "reject"})
    assert rule.status_code == 201
    assert [r["id"] for r in http.get("/sandbox/faults").get_json()["data"]] == [
        rule.get_json()["id"]
    ]
    assert http.delete(f"/sandbox/faults/{rule.get_json()['id']}").status_code == 204
    assert (
        http.post("/sandbox/faults", json={"operation": "x", "mode": "reject"}).status_code == 400
    )
    for disbursement_only in ("drop_callback", "synchronous"):
        refused = http.post(
            "/sandbox/faults", json={"operation": "transaction", "mode": disbursement_only}
        )
        assert refused.status_code == 400

    opened = http.post(
        "/sandbox/wallets",
        json={"msisdn": "+255700000001", "first_name": "Neema", "last_name": "Mushi",
              "currency": "TZS", "balance": "5000"},
    )  # fmt: skip
    assert opened.status_code == 201
    assert http.get("/sandbox/wallets/+255700000001").get_json()["name"] == "Neema Mushi"
    disburse(http)
    assert len(http.get("/sandbox/transactions").get_json()["data"]) == 1
    assert http.post("/sandbox/reset").get_json()["wallets"] == 6
    assert http.get("/sandbox/transactions").get_json()["data"] == []
    assert http.get("/sandbox/wallets/+255700000001").status_code == 404
