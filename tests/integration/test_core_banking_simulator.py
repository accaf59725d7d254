"""The core-banking simulator on its own, over HTTP: request validation, SOAP faults for
malformed or hostile requests, the admin API (faults, accounts, postings, holds) and its CLI."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from lxml import etree

from adapters.core_banking.contract import NAMESPACE, SOAP_ACTION_PREFIX, SOAP_ENV
from adapters.core_banking.simulator import CoreBankingSimulator
from adapters.core_banking.simulator.seed import DEMO_ACCOUNTS
from gateway.cli import main
from gateway.domain.ids import new_id
from gateway.domain.money import Money

NS = {"cb": NAMESPACE, "e": SOAP_ENV}
HEADER = (
    "<cb:RequestHeader><cb:MessageId>msg-1</cb:MessageId><cb:SourceSystem>RAW</cb:SourceSystem>"
    "<cb:RequestedAt>2025-01-01T00:00:00Z</cb:RequestedAt></cb:RequestHeader>"
)


def envelope(body: str, header: str = HEADER, extra_header: str = "") -> str:
    return (
        f'<e:Envelope xmlns:e="{SOAP_ENV}" xmlns:cb="{NAMESPACE}">'
        f"<e:Header>{header}{extra_header}</e:Header><e:Body>{body}</e:Body></e:Envelope>"
    )


def post(simulator: Any, data: str | bytes, action: str | None = None) -> requests.Response:
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    if action is not None:
        headers["SOAPAction"] = f'"{action}"'
    return requests.post(simulator.server.soap_url, data=data, headers=headers, timeout=5)


def fault_of(response: requests.Response) -> dict[str, str | None]:
    assert response.status_code == 500, response.text
    doc = etree.fromstring(response.content)
    fault = doc.find("e:Body/e:Fault", NS)
    detail = fault.find("detail/cb:CoreBankingFault", NS)
    return {
        "faultcode": fault.findtext("faultcode"),
        "code": detail.findtext("cb:Code", namespaces=NS),
        "category": detail.findtext("cb:Category", namespaces=NS),
        "retryable": detail.findtext("cb:Retryable", namespaces=NS),
        "field": detail.findtext("cb:Field", namespaces=NS),
        "echo": doc.findtext("e:Header/cb:ResponseHeader/cb:MessageId", namespaces=NS),
    }


@pytest.fixture
def admin(core_simulator) -> str:  # type: ignore[no-untyped-def]
    return core_simulator.server.base_url + "/simulator"


# --- SOAP endpoint --------------------------------------------------------------------------------


def test_a_valid_raw_request_is_answered_with_the_echoed_message_id(core_simulator) -> None:  # type: ignore[no-untyped-def]
    response = post(core_simulator, envelope("<cb:Ping/>"), SOAP_ACTION_PREFIX + "Ping")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    doc = etree.fromstring(response.content)
    assert doc.findtext("e:Header/cb:ResponseHeader/cb:MessageId", namespaces=NS) == "msg-1"
    assert doc.findtext("e:Body/cb:PingResponse/cb:Status", namespaces=NS) == "UP"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("<cb:GetTransactionStatus><cb:ExternalReference>" + "x" * 36 + "</cb:ExternalReference>"
         "</cb:GetTransactionStatus>", "ExternalReference"),
        ("<cb:GetBalance><cb:AccountNumber>62-22</cb:AccountNumber></cb:GetBalance>",
         "AccountNumber"),
        ("<cb:PostTransfer><cb:ExternalReference>t</cb:ExternalReference><cb:DebitAccount>12345"
         "</cb:DebitAccount><cb:CreditAccount>67890</cb:CreditAccount>"
         '<cb:Amount Ccy="CNY">1.123456</cb:Amount></cb:PostTransfer>', "Amount"),
        ("<cb:PostTransfer><cb:ExternalReference>t</cb:ExternalReference><cb:DebitAccount>12345"
         "</cb:DebitAccount><cb:CreditAccount>67890</cb:CreditAccount>"
         '<cb:Amount Ccy="cny">1.00</cb:Amount></cb:PostTransfer>', "Amount"),
        ("<cb:PostTransfer><cb:ExternalReference>t</cb:ExternalReference><cb:DebitAccount>12345"
         "</cb:DebitAccount><cb:CreditAccount>67890</cb:CreditAccount>"
         '<cb:Amount Ccy="CNY">0</cb:Amount></cb:PostTransfer>', "Amount"),
        ("<cb:GetBalance><cb:AccountNumber>12345</cb:AccountNumber><cb:Extra/></cb:GetBalance>",
         "Extra"),
    ],
)  # fmt: skip
def test_requests_that_break_the_xsd_are_refused(core_simulator, body: str, field: str) -> None:  # type: ignore[no-untyped-def]
    before = len(core_simulator.validation_failures)
    fault = fault_of(post(core_simulator, envelope(body)))
    assert (fault["code"], fault["category"], fault["faultcode"]) == (
        "SCHEMA_VALIDATION",
        "CLIENT",
        "soap-env:Client",
    )
    assert fault["field"] == field
    assert fault["echo"] == "msg-1"
    assert len(core_simulator.validation_failures) == before + 1


def test_a_header_is_required(core_simulator) -> None:  # type: ignore[no-untyped-def]
    fault = fault_of(post(core_simulator, envelope("<cb:Ping/>", header="")))
    assert fault["code"] == "SCHEMA_VALIDATION"
    bad_header = HEADER.replace("msg-1", "m" * 36)
    assert fault_of(post(core_simulator, envelope("<cb:Ping/>", header=bad_header)))["code"] == (
        "SCHEMA_VALIDATION"
    )


@pytest.mark.parametrize(
    ("data", "code", "faultcode"),
    [
        ("this is not xml", "MALFORMED_REQUEST", "soap-env:Client"),
        ("<cb:Ping xmlns:cb='urn:wallet-gateway:core-banking:v1'/>", "MALFORMED_REQUEST",
         "soap-env:Client"),
        ('<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>',
         "MALFORMED_REQUEST", "soap-env:VersionMismatch"),
        (envelope("<cb:Transfer/>"), "UNSUPPORTED_OPERATION", "soap-env:Client"),
        (envelope("<cb:Ping/><cb:Ping/>"), "MALFORMED_REQUEST", "soap-env:Client"),
        (envelope("<cb:Ping/>", extra_header='<x:Auth xmlns:x="urn:x" e:mustUnderstand="1"/>'),
         "MUST_UNDERSTAND", "soap-env:MustUnderstand"),
    ],
)  # fmt: skip
def test_malformed_requests_get_soap_faults(core_simulator, data, code, faultcode) -> None:  # type: ignore[no-untyped-def]
    fault = fault_of(post(core_simulator, data))
    assert (fault["code"], fault["faultcode"]) == (code, faultcode)


def test_entities_and_dtds_are_refused(core_simulator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE e:Envelope [<!ENTITY x SYSTEM "file://{secret}">]>'
        + envelope("<cb:GetTransactionStatus><cb:ExternalReference>&x;</cb:ExternalReference>"
                   "</cb:GetTransactionStatus>")
    )  # fmt: skip
    response = post(core_simulator, xxe)
    assert fault_of(response)["code"] == "MALFORMED_REQUEST"
    assert "TOP-SECRET" not in response.text


def test_soap_action_must_match_the_operation(core_simulator) -> None:  # type: ignore[no-untyped-def]
    fault = fault_of(
        post(core_simulator, envelope("<cb:Ping/>"), SOAP_ACTION_PREFIX + "GetBalance")
    )
    assert fault["code"] == "SOAP_ACTION_MISMATCH"


def test_amounts_finer_than_the_currency_are_refused(core_simulator) -> None:  # type: ignore[no-untyped-def]
    body = (
        "<cb:PostTransfer><cb:ExternalReference>" + new_id("tr") + "</cb:ExternalReference>"
        "<cb:DebitAccount>6222020000000001</cb:DebitAccount>"
        "<cb:CreditAccount>9000000000000101</cb:CreditAccount>"
        '<cb:Amount Ccy="CNY">1.001</cb:Amount></cb:PostTransfer>'
    )
    fault = fault_of(post(core_simulator, envelope(body)))
    assert (fault["code"], fault["field"]) == ("INVALID_AMOUNT", "Amount")


def test_wsdl_and_schema_are_served(core_simulator) -> None:  # type: ignore[no-untyped-def]
    url = core_simulator.server.soap_url
    wsdl = etree.fromstring(requests.get(url + "?wsdl", timeout=5).content)
    imports = wsdl.findall(".//{http://www.w3.org/2001/XMLSchema}import")
    assert imports[0].get("schemaLocation") == url + "?xsd=core-banking.xsd"
    xsd = requests.get(imports[0].get("schemaLocation"), timeout=5)
    assert etree.XMLSchema(etree.fromstring(xsd.content)) is not None
    assert requests.get(url, timeout=5).status_code == 400


# --- admin API ------------------------------------------------------------------------------------


def test_faults_can_be_added_listed_and_removed_over_http(core_simulator, admin) -> None:  # type: ignore[no-untyped-def]
    created = requests.post(
        admin + "/faults", json={"operation": "Ping", "mode": "html_502", "status": 503}, timeout=5
    )
    assert created.status_code == 201
    rule = created.json()
    assert requests.get(admin + "/faults", timeout=5).json()["data"][0]["id"] == rule["id"]
    blocked = post(core_simulator, envelope("<cb:Ping/>"))
    assert blocked.status_code == 503
    assert blocked.headers["Content-Type"].startswith("text/html")
    assert requests.delete(f"{admin}/faults/{rule['id']}", timeout=5).status_code == 204
    assert requests.delete(f"{admin}/faults/{rule['id']}", timeout=5).status_code == 404
    assert post(core_simulator, envelope("<cb:Ping/>")).status_code == 200
    refused = requests.post(admin + "/faults", json={"mode": "explode"}, timeout=5)
    assert refused.status_code == 400 and "unknown mode" in refused.json()["error"]
    requests.post(admin + "/faults", json={"mode": "unavailable"}, timeout=5)
    assert requests.delete(admin + "/faults", timeout=5).status_code == 204
    assert core_simulator.faults.rules() == []


def test_a_maintenance_window_over_http(core_simulator, admin, clock) -> None:  # type: ignore[no-untyped-def]
    start = clock.now()
    window = {
        "mode": "unavailable",
        "active_from": start.isoformat(),
        "active_until": (start + timedelta(hours=1)).isoformat(),
    }
    assert requests.post(admin + "/faults", json=window, timeout=5).status_code == 201
    fault = fault_of(post(core_simulator, envelope("<cb:Ping/>")))
    assert (fault["code"], fault["category"], fault["retryable"]) == (
        "SYSTEM_UNAVAILABLE",
        "SERVER",
        "true",
    )


def test_accounts_can_be_opened_credited_changed_and_inspected(
    core_simulator, admin, core_banking
) -> None:  # type: ignore[no-untyped-def]
    opened = requests.post(
        admin + "/accounts",
        json={"currency": "KES", "name": "Demo Customer", "balance": "10.00",
              "registered_mobile": "+254700000001"},
        timeout=5,
    )  # fmt: skip
    assert opened.status_code == 201
    number = opened.json()["number"]
    assert opened.json()["ledger_balance"] == "10.00000"
    credited = requests.post(
        f"{admin}/accounts/{number}/credit", json={"amount": "5.50"}, timeout=5
    )
    assert credited.status_code == 201
    assert credited.json()["account"]["available_balance"] == "15.50000"
    assert core_banking.get_balance(number).ledger == Money.parse("15.50", "KES")
    changed = requests.patch(f"{admin}/accounts/{number}", json={"status": "BLOCKED"}, timeout=5)
    assert changed.json()["status"] == "BLOCKED"
    assert core_banking.get_account(number).status == "BLOCKED"
    shown = requests.get(f"{admin}/accounts/{number}", timeout=5).json()
    assert shown["registered_mobile"] == "+254700000001" and shown["holds"] == []
    assert requests.get(f"{admin}/accounts/1234567890", timeout=5).status_code == 404
    listed = requests.get(admin + "/accounts?kind=clearing", timeout=5).json()["data"]
    assert {row["name"] for row in listed} >= {"WeChat Pay clearing CNY", "Alipay clearing CNY"}
    assert requests.post(admin + "/accounts", json={"name": "x"}, timeout=5).status_code == 400
    bad = requests.patch(f"{admin}/accounts/{number}", json={"status": "ASLEEP"}, timeout=5)
    assert bad.status_code == 400


def test_postings_holds_and_request_counts_can_be_inspected(
    core_simulator, admin, core_banking
) -> None:  # type: ignore[no-untyped-def]
    customer = core_simulator.open_account(balance="50.00")
    partner = core_simulator.open_account(balance="0.00")
    hold, transfer = new_id("hld"), new_id("tr")
    core_banking.place_hold(
        hold_reference=hold, account_number=customer, amount=Money.parse("20.00", "CNY")
    )
    core_banking.post_transfer(
        external_reference=transfer, debit_account=customer, credit_account=partner,
        amount=Money.parse("20.00", "CNY"), hold_reference=hold,
    )  # fmt: skip
    postings = requests.get(admin + "/postings", params={"reference": transfer}, timeout=5).json()
    assert postings["count"] == 1
    assert postings["data"][0]["amount"] == "20.00000"
    assert postings["data"][0]["hold_reference"] == hold
    holds = requests.get(admin + "/holds", params={"account": customer}, timeout=5).json()
    assert holds["data"][0]["status"] == "CAPTURED"
    assert holds["data"][0]["captured_amount"] == "20.00000"
    counts = requests.get(admin + "/requests", timeout=5).json()["counts"]
    assert counts["PostTransfer"] >= 1 and counts["PlaceHold"] >= 1


def test_pending_postings_can_be_booked_or_rejected_over_http(
    core_simulator, admin, core_banking
) -> None:  # type: ignore[no-untyped-def]
    customer = core_simulator.open_account(balance="50.00")
    partner = core_simulator.open_account(balance="0.00")
    core_simulator.inject("PostTransfer", "pending", times=2)
    first, second = new_id("tr"), new_id("tr")
    results = [
        core_banking.post_transfer(
            external_reference=reference, debit_account=customer, credit_account=partner,
            amount=Money.parse("10.00", "CNY"),
        )
        for reference in (first, second)
    ]  # fmt: skip
    booked = requests.post(f"{admin}/postings/{results[0].core_reference}/book", timeout=5)
    assert booked.json()["status"] == "BOOKED"
    rejected = requests.post(
        f"{admin}/postings/{results[1].core_reference}/reject", json={"code": "LIMIT_EXCEEDED"},
        timeout=5,
    )  # fmt: skip
    assert rejected.status_code == 204
    assert core_banking.get_transaction_status(first).status == "BOOKED"
    status = core_banking.get_transaction_status(second)
    assert (status.status, status.rejection_code) == ("REJECTED", "LIMIT_EXCEEDED")
    again = requests.post(f"{admin}/postings/{results[0].core_reference}/book", timeout=5)
    assert again.status_code == 400


def test_reset_wipes_and_reseeds_a_simulator() -> None:
    simulator = CoreBankingSimulator()
    admin = simulator.app.test_client()
    number = simulator.open_account(balance="1.00")
    simulator.inject("Ping", "drop")
    assert admin.post("/simulator/reset").json == {"seeded": len(DEMO_ACCOUNTS)}
    assert admin.get(f"/simulator/accounts/{number}").status_code == 404
    assert simulator.faults.rules() == []
    assert admin.get("/simulator").json["faults"] == []


# --- standalone command ---------------------------------------------------------------------------


def test_the_standalone_command_refuses_a_busy_port(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            main,
            ["simulator", "core-banking", "--port", str(port), "--db", ":memory:"],
            env={"GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_ENVIRONMENT": "development"},
        )
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_the_standalone_command_is_refused_in_production(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        main,
        ["simulator", "core-banking", "--port", "0"],
        env={
            "GATEWAY_ENVIRONMENT": "production",
            "GATEWAY_DATABASE_URL": "postgresql+psycopg://gw@db/gw",
            "GATEWAY_VAULT_KEYS_DIR": str(tmp_path),
            "GATEWAY_SIGNING_KEYS_DIR": str(tmp_path),
            "GATEWAY_PUBLIC_BASE_URL": "https://gw.example",
            "GATEWAY_CORE_BANKING_URL": "https://core.bank.example/core-banking",
            "GATEWAY_NOTIFIER": "http",
            "GATEWAY_SMS_GATEWAY_URL": "https://sms.bank.example/messages",
            "GATEWAY_FEE_INCOME_ACCOUNTS": '{"CNY": "9200000000000301"}',
        },
    )
    assert result.exit_code == 1
    assert "not for production" in result.output
