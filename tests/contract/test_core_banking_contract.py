"""The core-banking contract (contracts/core-banking/) holds on both sides of the wire.

* every request the adapter sends validates against the XSD (checked here with lxml, and by
  the simulator, which refuses invalid requests);
* every simulator response (and fault) validates against the XSD and parses with zeep;
* unknown elements in the bank's namespace (the xsd:any extension point) are tolerated;
* a response that breaks the contract is an error, never a silently defaulted value.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
import responses
import zeep
from lxml import etree

from adapters.base import CoreBankingError, CoreBankingRejected, OutcomeUnknown
from adapters.core_banking import contract
from adapters.core_banking.simulator.envelope import EXTENSION_NS
from adapters.core_banking.soap import RemoteLoadRefused, SoapCoreBanking, _Transport
from gateway.domain.ids import new_id
from gateway.domain.money import Money
from tests.conftest import EnvelopeRecorder, make_core_banking

NS = {"cb": contract.NAMESPACE, "e": contract.SOAP_ENV}
SCHEMA = etree.XMLSchema(etree.parse(str(contract.xsd_path())))
WSDL = etree.parse(str(contract.wsdl_path()))


def _wsdl_operations(doc: Any) -> set[str]:
    return {
        node.get("name")
        for node in doc.iterfind(
            ".//{http://schemas.xmlsoap.org/wsdl/}portType/{http://schemas.xmlsoap.org/wsdl/}operation"
        )
    }


def _exercise_every_operation(core: SoapCoreBanking, simulator: Any) -> None:
    """Call each operation with every optional field, plus business faults, once."""
    customer = simulator.open_account(balance="500.00", mobile="+8613800138999")
    partner = simulator.open_account(balance="0.00", kind="settlement")
    hold = new_id("hld")
    core.ping()
    core.get_account(customer)
    core.get_balance(customer)
    core.place_hold(
        hold_reference=hold,
        account_number=customer,
        amount=Money.parse("100.00", "CNY"),
        expires_at=simulator.clock.now() + timedelta(hours=1),
        description="payout hold",
    )
    transfer = new_id("tr")
    core.post_transfer(
        external_reference=transfer,
        debit_account=customer,
        credit_account=partner,
        amount=Money.parse("60.00", "CNY"),
        description="capture",
        hold_reference=hold,
    )
    second_hold = new_id("hld")
    core.place_hold(
        hold_reference=second_hold, account_number=customer, amount=Money.parse("1.00", "CNY")
    )
    core.release_hold(hold_reference=second_hold)
    core.reverse_transfer(
        external_reference=new_id("rf"), original_reference=transfer, reason="refund"
    )
    core.get_transaction_status(transfer)
    today = simulator.clock.now().date()
    page = core.get_statement(account_number=customer, from_date=today, to_date=today, page_size=1)
    core.get_statement(
        account_number=customer,
        from_date=today,
        to_date=today,
        page_size=1,
        page_token=page.next_page_token,
    )
    with pytest.raises(CoreBankingRejected):
        core.post_transfer(
            external_reference=new_id("tr"),
            debit_account=customer,
            credit_account=partner,
            amount=Money.parse("9999.00", "CNY"),
        )


def test_the_contract_parses_and_the_wsdl_imports_the_xsd() -> None:
    assert _wsdl_operations(WSDL) == set(contract.OPERATIONS)
    client = zeep.Client(str(contract.wsdl_path()))
    assert set(client.service._binding._operations) == set(contract.OPERATIONS)


def test_the_adapter_and_simulator_implement_every_operation() -> None:
    from adapters.base import CoreBanking
    from adapters.core_banking.simulator.app import CoreBankingSimulator

    handlers = {name.removeprefix("_op_") for name in dir(CoreBankingSimulator)}
    assert set(contract.OPERATIONS) <= handlers
    assert isinstance(SoapCoreBanking("http://127.0.0.1:9/core-banking"), CoreBanking)


def test_the_contract_is_never_fetched_over_the_network() -> None:
    transport = _Transport(requests.Session(), (1.0, 1.0))
    with pytest.raises(RemoteLoadRefused):
        transport.load("http://example.com/core-banking.xsd")
    assert transport.load(str(contract.xsd_path())).startswith(b"<?xml")


def test_every_request_the_adapter_sends_validates_against_the_xsd(core_simulator) -> None:  # type: ignore[no-untyped-def]
    recorder = EnvelopeRecorder()
    core = make_core_banking(core_simulator, plugins=[recorder])
    failures_before = list(core_simulator.validation_failures)
    _exercise_every_operation(core, core_simulator)

    assert {name for name, _, _ in recorder.sent} == set(contract.OPERATIONS)
    for name, envelope, headers in recorder.sent:
        header = envelope.find("e:Header/cb:RequestHeader", NS)
        body = envelope.find("e:Body", NS)[0]
        assert SCHEMA.validate(header), (name, SCHEMA.error_log)
        assert SCHEMA.validate(body), (name, SCHEMA.error_log)
        assert etree.QName(body).localname == name
        assert headers["SOAPAction"].strip('"') == contract.SOAP_ACTION_PREFIX + name
    # ...and the simulator, validating independently, refused none of them.
    assert core_simulator.validation_failures == failures_before


def test_every_simulator_response_validates_and_parses_with_zeep(core_simulator) -> None:  # type: ignore[no-untyped-def]
    recorder = EnvelopeRecorder()
    core = make_core_banking(core_simulator, plugins=[recorder])
    _exercise_every_operation(core, core_simulator)

    answered = set()
    for name, envelope in recorder.received:
        header = envelope.find("e:Header/cb:ResponseHeader", NS)
        assert header is not None and SCHEMA.validate(header), (name, SCHEMA.error_log)
        payload = envelope.find("e:Body", NS)[0]
        if payload.tag == f"{{{contract.SOAP_ENV}}}Fault":
            detail = payload.find("detail/cb:CoreBankingFault", NS)
            assert detail is not None and SCHEMA.validate(detail), SCHEMA.error_log
            continue
        assert SCHEMA.validate(payload), (name, SCHEMA.error_log)
        answered.add(name)
    assert answered == set(contract.OPERATIONS)


def test_unknown_bank_extensions_in_responses_are_tolerated(core_simulator) -> None:  # type: ignore[no-untyped-def]
    recorder = EnvelopeRecorder()
    core = make_core_banking(core_simulator, plugins=[recorder])
    core_simulator.inject("*", "extensions")
    _exercise_every_operation(core, core_simulator)

    responses_with_extensions = [
        name
        for name, envelope in recorder.received
        if envelope.find(f"e:Body/*/{{{EXTENSION_NS}}}BankExtension", NS) is not None
    ]
    assert set(responses_with_extensions) == set(contract.OPERATIONS)


def test_the_simulator_serves_the_same_wsdl_and_zeep_can_use_it(core_simulator) -> None:  # type: ignore[no-untyped-def]
    url = core_simulator.server.soap_url
    served = etree.fromstring(requests.get(url + "?wsdl", timeout=5).content)
    assert _wsdl_operations(served) == _wsdl_operations(WSDL)
    address = served.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address.get("location") == url
    # A client that only knows the URL (as a bank's other consumers would) can call it.
    client = zeep.Client(url + "?wsdl")
    result = client.service.Ping(
        _soapheaders={
            "RequestHeader": {
                "MessageId": "contract-ping",
                "SourceSystem": "CONTRACT",
                "RequestedAt": core_simulator.clock.now(),
            }
        }
    )
    assert result.body.Status == "UP"
    assert result.header.ResponseHeader.MessageId == "contract-ping"


def _soap(body: str, header: str = "<cb:MessageId>m-1</cb:MessageId>") -> str:
    return (
        f'<e:Envelope xmlns:e="{contract.SOAP_ENV}" xmlns:cb="{contract.NAMESPACE}">'
        f"<e:Header><cb:ResponseHeader>{header}<cb:RespondedAt>2025-01-01T00:00:00Z"
        f"</cb:RespondedAt></cb:ResponseHeader></e:Header><e:Body>{body}</e:Body></e:Envelope>"
    )


@responses.activate
def test_a_response_missing_a_required_element_is_an_error_not_a_default() -> None:
    url = "http://core.invalid/core-banking"
    core = SoapCoreBanking(url, read_attempts=1)
    echo: dict[str, str] = {}

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        message_id = etree.fromstring(request.body).findtext(".//cb:MessageId", namespaces=NS)
        echo["id"] = message_id
        operation = etree.QName(etree.fromstring(request.body).find("e:Body", NS)[0]).localname
        bodies = {
            # AsOf is missing: strict zeep refuses, so nothing is guessed.
            "GetBalance": "<cb:GetBalanceResponse><cb:AccountNumber>6222020000000001"
            '</cb:AccountNumber><cb:Available Ccy="CNY">1.00</cb:Available>'
            '<cb:Ledger Ccy="CNY">1.00</cb:Ledger></cb:GetBalanceResponse>',
            # CoreReference is missing on a booking: its outcome cannot be trusted.
            "PostTransfer": "<cb:PostTransferResponse><cb:Posting><cb:ExternalReference>tr_1"
            "</cb:ExternalReference><cb:Status>BOOKED</cb:Status><cb:BookingDate>2025-01-01"
            "</cb:BookingDate><cb:ValueDate>2025-01-01</cb:ValueDate></cb:Posting>"
            "<cb:Replayed>false</cb:Replayed></cb:PostTransferResponse>",
        }
        return (
            200,
            {"Content-Type": "text/xml"},
            _soap(bodies[operation], f"<cb:MessageId>{message_id}</cb:MessageId>"),
        )

    responses.add_callback(responses.POST, url, callback=answer)
    with pytest.raises(CoreBankingError) as read:
        core.get_balance("6222020000000001")
    assert type(read.value) is CoreBankingError and read.value.core_code == "BAD_RESPONSE"
    with pytest.raises(OutcomeUnknown):
        core.post_transfer(
            external_reference="tr_1",
            debit_account="6222020000000001",
            credit_account="9000000000000101",
            amount=Money.parse("1.00", "CNY"),
        )


@responses.activate
def test_a_response_that_does_not_echo_our_message_id_is_not_trusted() -> None:
    url = "http://core.invalid/core-banking"
    core = SoapCoreBanking(url, read_attempts=1)
    body = (
        "<cb:PostTransferResponse><cb:Posting><cb:ExternalReference>tr_1</cb:ExternalReference>"
        "<cb:CoreReference>CB1</cb:CoreReference><cb:Status>BOOKED</cb:Status>"
        "<cb:BookingDate>2025-01-01</cb:BookingDate><cb:ValueDate>2025-01-01</cb:ValueDate>"
        "</cb:Posting><cb:Replayed>false</cb:Replayed></cb:PostTransferResponse>"
    )
    responses.add(responses.POST, url, body=_soap(body), content_type="text/xml")
    with pytest.raises(OutcomeUnknown):
        core.post_transfer(
            external_reference="tr_1",
            debit_account="6222020000000001",
            credit_account="9000000000000101",
            amount=Money.parse("1.00", "CNY"),
        )
