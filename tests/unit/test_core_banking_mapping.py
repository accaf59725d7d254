"""Pure mapping of core-banking faults, transport failures and responses (mapping.py, soap.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace as Obj

import pytest
import requests
from lxml import etree
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError
from zeep import exceptions as zeep_errors

from adapters.base import (
    CoreBankingError,
    CoreBankingRejected,
    CoreBankingUnavailable,
    OutcomeUnknown,
)
from adapters.core_banking import mapping
from adapters.core_banking.contract import NAMESPACE
from adapters.core_banking.soap import mask_envelope
from gateway.domain.money import Money

# --- fault details --------------------------------------------------------------------------------


def _detail(
    code: str, category: str, retryable: bool = False, field: str | None = None
) -> etree._Element:
    detail = etree.Element("detail")
    fault = etree.SubElement(detail, f"{{{NAMESPACE}}}CoreBankingFault")
    for name, value in (
        ("Code", code),
        ("Category", category),
        ("Message", "Account 6222020000000001 has no funds"),
        ("Retryable", "true" if retryable else "false"),
        ("Field", field),
    ):
        if value is not None:
            etree.SubElement(fault, f"{{{NAMESPACE}}}{name}").text = value
    return detail


def test_fault_detail_is_parsed() -> None:
    parsed = mapping.parse_fault_detail(_detail("INSUFFICIENT_FUNDS", "CLIENT", field="Amount"))
    assert parsed == mapping.FaultDetail(
        "INSUFFICIENT_FUNDS", "CLIENT", "Account 6222020000000001 has no funds", False, "Amount"
    )
    assert mapping.parse_fault_detail(etree.Element("detail")) is None
    assert mapping.parse_fault_detail("<detail/>") is None
    assert mapping.parse_fault_detail(_detail("X", "SOMETIMES")) is None


@pytest.mark.parametrize("posting", [False, True])
def test_client_faults_are_rejections_with_partner_safe_details(posting: bool) -> None:
    detail = mapping.parse_fault_detail(_detail("INSUFFICIENT_FUNDS", "CLIENT", field="Amount"))
    error = mapping.error_for_fault(detail, faultcode="soap-env:Client", posting=posting)
    assert type(error) is CoreBankingRejected
    assert (error.code, error.core_code, error.category, error.field) == (
        "insufficient_funds",
        "INSUFFICIENT_FUNDS",
        "CLIENT",
        "Amount",
    )
    assert error.retryable is False
    assert "6222020000000001" not in error.detail  # the core's message is not passed on
    assert "6222020000000001" in error.core_message  # type: ignore[attr-defined]


def test_every_documented_business_fault_has_a_partner_code() -> None:
    for code, (partner_code, detail) in mapping.FAULTS.items():
        error = mapping.error_for_fault(
            mapping.FaultDetail(code, "CLIENT", "m", False), faultcode=None, posting=True
        )
        assert (error.code, error.detail) == (partner_code, detail)
        assert partner_code.islower() and " " not in partner_code


def test_unknown_client_codes_are_still_rejections() -> None:
    error = mapping.error_for_fault(
        mapping.FaultDetail("NEW_RULE", "CLIENT", "m", False), faultcode=None, posting=False
    )
    assert type(error) is CoreBankingRejected and error.code == "core_banking_rejected"


@pytest.mark.parametrize("code", sorted(mapping.INTEGRATION_FAULTS))
def test_integration_faults_are_our_problem_not_the_partners(code: str) -> None:
    error = mapping.error_for_fault(
        mapping.FaultDetail(code, "CLIENT", "m", False), faultcode=None, posting=True
    )
    assert type(error) is CoreBankingError
    assert error.code == "core_banking_integration_error" and error.status == 502


@pytest.mark.parametrize(
    ("retryable", "posting", "expected"),
    [
        (True, False, CoreBankingUnavailable),
        (True, True, CoreBankingUnavailable),  # the core says nothing was done
        (False, False, CoreBankingError),
        (False, True, OutcomeUnknown),  # the core failed mid-way: it may have booked
    ],
)
def test_server_faults_follow_the_retryable_flag(
    retryable: bool, posting: bool, expected: type[CoreBankingError]
) -> None:
    error = mapping.error_for_fault(
        mapping.FaultDetail("SYSTEM_UNAVAILABLE", "SERVER", "m", retryable),
        faultcode="soap-env:Server",
        posting=posting,
    )
    assert type(error) is expected
    assert error.retryable is (expected is CoreBankingUnavailable)


def test_faults_without_typed_detail() -> None:
    client = mapping.error_for_fault(None, faultcode="soap-env:Client", posting=True)
    assert type(client) is CoreBankingError and client.core_code == "SOAP_CLIENT_FAULT"
    assert type(mapping.error_for_fault(None, faultcode="Server", posting=True)) is OutcomeUnknown
    read = mapping.error_for_fault(None, faultcode=None, posting=False)
    assert type(read) is CoreBankingUnavailable


# --- transport failures ---------------------------------------------------------------------------

_REFUSED = requests.ConnectionError(
    MaxRetryError(None, "/core-banking", NewConnectionError(None, "refused"))  # type: ignore[arg-type]
)
_ABORTED = requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError()))


@pytest.mark.parametrize(
    ("exc", "read", "posting"),
    [
        (_REFUSED, CoreBankingUnavailable, CoreBankingUnavailable),
        (requests.ConnectTimeout(), CoreBankingUnavailable, CoreBankingUnavailable),
        (requests.ReadTimeout(), CoreBankingUnavailable, OutcomeUnknown),
        (_ABORTED, CoreBankingUnavailable, OutcomeUnknown),
        (requests.exceptions.ChunkedEncodingError(), CoreBankingUnavailable, OutcomeUnknown),
        (zeep_errors.TransportError(status_code=502), CoreBankingUnavailable, OutcomeUnknown),
        (zeep_errors.TransportError(status_code=503), CoreBankingUnavailable, OutcomeUnknown),
        (zeep_errors.TransportError(status_code=200), CoreBankingUnavailable, OutcomeUnknown),
        (
            zeep_errors.TransportError(status_code=429),
            CoreBankingUnavailable,
            CoreBankingUnavailable,
        ),
        (zeep_errors.TransportError(status_code=404), CoreBankingError, CoreBankingError),
        (zeep_errors.XMLParseError("bad"), CoreBankingError, OutcomeUnknown),
        (mapping.ResponseMismatch("Status"), CoreBankingError, OutcomeUnknown),
    ],
)
def test_transport_failures(
    exc: BaseException, read: type[CoreBankingError], posting: type[CoreBankingError]
) -> None:
    assert type(mapping.classify_transport_error(exc, posting=False)) is read
    assert type(mapping.classify_transport_error(exc, posting=True)) is posting


def test_only_unavailable_errors_are_retryable() -> None:
    assert mapping.classify_transport_error(requests.ReadTimeout(), posting=False).retryable
    assert not mapping.classify_transport_error(requests.ReadTimeout(), posting=True).retryable


# --- responses ------------------------------------------------------------------------------------


def _amount(value: str, currency: str) -> Obj:
    return Obj(_value_1=Decimal(value), Ccy=currency)


def test_balance_maps_five_digit_decimals_to_money() -> None:
    body = Obj(
        AccountNumber="6222020000000001",
        Available=_amount("-10.50000", "CNY"),
        Ledger=_amount("100.00000", "CNY"),
        AsOf=datetime(2025, 1, 1, 8, tzinfo=timezone(timedelta(hours=8))),
    )
    balance = mapping.balance(body)
    assert balance.available == Money(-1050, "CNY")
    assert balance.ledger == Money(10000, "CNY")
    assert balance.as_of == datetime(2025, 1, 1, 0, tzinfo=UTC)
    assert balance.as_of.tzinfo is UTC


def test_amounts_that_would_round_are_refused() -> None:
    with pytest.raises(mapping.ResponseMismatch, match="precision"):
        mapping.money(Obj(Amount=_amount("1.005", "CNY")), "Amount")
    with pytest.raises(mapping.ResponseMismatch):
        mapping.money(Obj(Amount=_amount("1", "XXX")), "Amount")
    with pytest.raises(mapping.ResponseMismatch):
        mapping.money(Obj(Amount=Obj(_value_1=1.0, Ccy="CNY")), "Amount")


def test_naive_timestamps_are_taken_as_utc() -> None:
    assert mapping.utc(datetime(2025, 1, 1), "AsOf") == datetime(2025, 1, 1, tzinfo=UTC)


def test_account_mapping_and_unknown_status() -> None:
    node = Obj(
        AccountNumber="6222020000000001",
        Name="Li Wei",
        Currency="CNY",
        Status="ACTIVE",
        DebitAllowed=True,
        CreditAllowed=False,
        RegisteredMobile="+8613800138001",
    )
    account = mapping.account(Obj(Account=node))
    assert account.registered_mobile == "+8613800138001"
    assert "+8613800138001" not in repr(account)  # never printed by accident
    assert account.credit_allowed is False
    with pytest.raises(mapping.ResponseMismatch, match="Status"):
        mapping.account(Obj(Account=Obj(**{**vars(node), "Status": "FROZEN"})))
    with pytest.raises(mapping.ResponseMismatch, match="Name"):
        mapping.account(Obj(Account=Obj(**{**vars(node), "Name": None})))


def test_transaction_statuses_are_exhaustive() -> None:
    for status in ("BOOKED", "PENDING", "REVERSED", "REJECTED", "NOT_FOUND"):
        result = mapping.transaction_status(Obj(ExternalReference="tr_1", Status=status))
        assert result.status == status and result.amount is None
    with pytest.raises(mapping.ResponseMismatch):
        mapping.transaction_status(Obj(ExternalReference="tr_1", Status="SETTLED"))
    rejected = mapping.transaction_status(
        Obj(ExternalReference="tr_1", Status="REJECTED", RejectionCode="INSUFFICIENT_FUNDS")
    )
    assert rejected.rejection_code == "INSUFFICIENT_FUNDS"


def test_posting_and_hold_mapping() -> None:
    posting = mapping.posting(
        Obj(
            Posting=Obj(
                ExternalReference="tr_1",
                CoreReference="CB1",
                Status="BOOKED",
                BookingDate=date(2025, 1, 2),
                ValueDate=date(2025, 1, 2),
            ),
            Replayed=True,
        )
    )
    assert posting.replayed is True and posting.status == "BOOKED"
    with pytest.raises(mapping.ResponseMismatch):
        mapping.posting(Obj(Posting=Obj(**{**vars(posting), "Status": "REVERSED"}), Replayed=False))
    hold = mapping.hold(
        Obj(
            Hold=Obj(
                HoldReference="hld_1",
                Amount=_amount("5.00000", "USD"),
                Status="PLACED",
                ExpiresAt=None,
            ),
            Replayed=False,
        )
    )
    assert hold.amount == Money(500, "USD") and hold.expires_at is None


def test_statement_entries_are_camt053_shaped() -> None:
    entry = Obj(
        NtryRef="NTRY1",
        Amt=_amount("12.30000", "KES"),
        CdtDbtInd="DBIT",
        Sts="BOOK",
        BookgDt=date(2025, 1, 2),
        ValDt=date(2025, 1, 3),
        AcctSvcrRef="CB1",
        EndToEndId="tr_1",
        AddtlNtryInf=None,
    )
    page = mapping.statement(
        Obj(AccountNumber="0110000000000001", Entries=Obj(Ntry=[entry]), NextPageToken="t")
    )
    assert page.entries[0].amount == Money(1230, "KES")
    assert page.entries[0].description == ""
    assert page.next_page_token == "t"
    empty = mapping.statement(Obj(AccountNumber="0110000000000001", Entries=Obj(Ntry=None)))
    assert empty.entries == [] and empty.next_page_token is None


# --- envelope logging -----------------------------------------------------------------------------


def test_logged_envelopes_mask_accounts_names_mobiles_and_drop_passwords() -> None:
    wsse = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
    envelope = etree.fromstring(
        f"""<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"
              xmlns:cb="{NAMESPACE}" xmlns:w="{wsse}">
          <e:Header><w:Security><w:UsernameToken><w:Username>gw</w:Username>
            <w:Password>s3cr3t-pass</w:Password></w:UsernameToken></w:Security></e:Header>
          <e:Body><cb:PostTransfer>
            <cb:ExternalReference>tr_1</cb:ExternalReference>
            <cb:DebitAccount>6222020000000001</cb:DebitAccount>
            <cb:CreditAccount>GB82WEST12345698765432</cb:CreditAccount>
            <cb:Description>from 6222020000000099</cb:Description>
          </cb:PostTransfer></e:Body></e:Envelope>""".encode()
    )
    text = mask_envelope(envelope)
    assert "6222020000000001" not in text and "****0001" in text
    assert "GB82WEST12345698765432" not in text and "****5432" in text
    assert "6222020000000099" not in text  # digits inside free text are redacted too
    assert "s3cr3t-pass" not in text
    assert "tr_1" in text
    # the envelope that is sent is untouched
    assert b"6222020000000001" in etree.tostring(envelope)
