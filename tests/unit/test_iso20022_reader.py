"""The camt reader against real messages: genkgo/camt's samples and their expected decode.

The reference decode (tests/fixtures/iso20022/*.json) is genkgo's PHP objects dumped as JSON:
amounts are signed minor units, dates are instants in UTC. Its message-level `getEntries` lists
the entries of the last record; each entry names its record.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.domain.settlement import SettlementEntry, Side
from gateway.iso20022 import catalog
from gateway.iso20022.reader import Header, MessageRejected, Record, StreamReader, sanitize

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "iso20022"
SAMPLES = sorted(p.stem for p in FIXTURES.glob("*.xml") if p.stem != "camt053.v2.wrong")


def _read(data: bytes, **options: Any) -> list[Any]:
    return list(StreamReader(io.BytesIO(data), **options))


def _instant(value: dict[str, str] | None) -> datetime | None:
    return datetime.fromisoformat(value["0"]) if value else None


def _by_record(items: list[Any]) -> dict[str, list[SettlementEntry]]:
    entries: dict[str, list[SettlementEntry]] = {}
    for item in items:
        if isinstance(item, Record):
            entries.setdefault(item.id, [])
        elif isinstance(item, SettlementEntry):
            entries[item.record_id or ""].append(item)
    return entries


def test_every_supported_version_has_a_sample_and_a_schema() -> None:
    versions = set()
    for stem in SAMPLES:
        items = _read((FIXTURES / f"{stem}.xml").read_bytes())
        versions.add(items[0].definition.name)
    assert versions >= {
        "camt.053.001.02", "camt.053.001.04", "camt.053.001.08",
        "camt.054.001.02", "camt.054.001.04", "camt.054.001.08",
    }  # fmt: skip
    for definition in catalog.DEFINITIONS.values():
        assert definition.xsd_path.exists()


@pytest.mark.parametrize("stem", SAMPLES)
def test_samples_decode_like_the_reference_parser(stem: str) -> None:
    expected = json.loads((FIXTURES / f"{stem}.json").read_text())
    items = _read((FIXTURES / f"{stem}.xml").read_bytes())

    header = items[0]
    assert isinstance(header, Header)
    assert header.message_id == expected["getGroupHeader"]["getMessageId"]
    records = [item for item in items if isinstance(item, Record)]
    assert records, "every sample has at least one record"
    by_record = _by_record(items)

    assert expected["getEntries"], "the reference decode lists entries"
    for reference in expected["getEntries"]:
        record = reference["getRecord"]
        ours = by_record[record["getId"]][reference["getIndex"]]
        ours_record = next(r for r in records if r.id == record["getId"])
        assert ours.account == record["getAccount"]["getIdentification"]
        assert ours_record.account == ours.account

        money = reference["getAmount"]
        assert ours.signed_minor == int(money["getAmount"])
        assert ours.amount.currency == money["getCurrency"]["getCode"]
        assert ours.side == Side.from_iso(reference["getCreditDebitIndicator"])
        assert reference["getStatus"] == "BOOK"
        assert ours.reversal is reference["getReversalIndicator"]
        assert ours.core_reference == reference["getAccountServicerReference"]
        assert ours.entry_reference == reference["getReference"]

        booked = _instant(reference["getBookingDate"])
        if booked is None:
            # No BookgDt: the settlement date falls back to the value date, then the record.
            assert ours.booking_date is not None
        elif ours.booked_at is not None:  # BookgDt/DtTm: the same instant
            assert ours.booked_at == booked
        else:  # BookgDt/Dt: genkgo reads the date as midnight UTC
            assert ours.booking_date == booked.date()
        valued = _instant(reference["getValueDate"])
        assert ours.value_date == (valued.date() if valued else None)

        details = [d for d in reference["getTransactionDetails"] if isinstance(d, dict)]
        first = (reference["getTransactionDetail"] or {}).get("getReference") or {}
        references = {first.get("getEndToEndId")} | {
            (d.get("getReference") or {}).get("getEndToEndId") for d in details
        }
        references.discard(None)
        if len(references) <= 1:
            assert ours.reference == first.get("getEndToEndId")
        else:
            # A batch entry carries several transactions: it names no single movement.
            assert ours.reference is None


def test_a_multi_statement_message_keeps_each_entry_with_its_account_record() -> None:
    items = _read((FIXTURES / "camt053.v2.multi.statement.xml").read_bytes())
    records = [item for item in items if isinstance(item, Record)]
    assert [r.id for r in records] == ["253EURNL26VAYB8060476890", "254EURNL26VAYB8060476890"]
    assert [(r.balance("OPBD").amount.value, r.balance("CLBD").amount.value) for r in records] == [  # type: ignore[union-attr]
        ("18.15", "27.00"),
        ("27.00", "20.00"),
    ]
    entries = [item for item in items if isinstance(item, SettlementEntry)]
    assert [(e.record_id, e.signed_minor, e.reference, e.seq) for e in entries] == [
        ("253EURNL26VAYB8060476890", 885, "000000001", 1),
        ("254EURNL26VAYB8060476890", -700, "000000002", 2),
    ]


def test_the_wrong_sample_is_rejected_naming_the_element() -> None:
    with pytest.raises(MessageRejected) as caught:
        _read((FIXTURES / "camt053.v2.wrong.xml").read_bytes())
    assert caught.value.code == "invalid_message"
    assert [e.as_problem_entry() for e in caught.value.errors] == [
        {
            "path": "/Document/BkToCstmrStmt",
            "line": 3,
            "detail": "Missing child element(s). Expected is ( Stmt ).",
        }
    ]


# --- generated messages: errors deep inside, streaming --------------------------------------

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"


def _entry_xml(n: int, amount: str = "1.00", currency: str = "EUR") -> str:
    return (
        f'<Ntry><NtryRef>N{n}</NtryRef><Amt Ccy="{currency}">{amount}</Amt>'
        "<CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>2026-01-02</Dt></BookgDt>"
        f"<ValDt><Dt>2026-01-02</Dt></ValDt><AcctSvcrRef>CB{n:012d}</AcctSvcrRef>"
        "<BkTxCd><Prtry><Cd>TRF</Cd></Prtry></BkTxCd><NtryDtls><TxDtls><Refs>"
        f"<EndToEndId>tr_{n:026d}</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>\n"
    )


def _statement_parts(
    entries: int, *, statements: int = 1, bad: dict[int, str] | None = None
) -> Iterator[bytes]:
    """A camt.053.001.02 statement, one entry per line (entry n on line n + header lines)."""
    bad = bad or {}
    yield (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{NS}">\n<BkToCstmrStmt>\n'
        "<GrpHdr><MsgId>GEN-1</MsgId><CreDtTm>2026-01-02T23:59:00Z</CreDtTm></GrpHdr>\n"
    ).encode()
    n = 0
    for s in range(1, statements + 1):
        yield (
            f"<Stmt><Id>S{s}</Id><CreDtTm>2026-01-02T23:59:00Z</CreDtTm>"
            "<Acct><Id><Othr><Id>9000000000000101</Id></Othr></Id></Acct>"
            '<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0.00</Amt>'
            "<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-01-02</Dt></Dt></Bal>\n"
        ).encode()
        for _ in range(entries):
            n += 1
            yield bad.get(n, _entry_xml(n)).encode()
        yield b"</Stmt>\n"
    yield b"</BkToCstmrStmt>\n</Document>\n"


def _statement(entries: int, **options: Any) -> bytes:
    return b"".join(_statement_parts(entries, **options))


def test_an_invalid_entry_deep_in_a_message_is_named_by_line_and_path() -> None:
    data = _statement(60, bad={37: _entry_xml(37, amount="1.0.0")})
    with pytest.raises(MessageRejected) as caught:
        _read(data)
    (error,) = caught.value.errors
    line = data.decode().splitlines().index(_entry_xml(37, amount="1.0.0").strip()) + 1
    assert error.path == "/Document/BkToCstmrStmt/Stmt[1]/Ntry[37]/Amt"
    assert error.line == line
    assert "1.0.0" not in error.detail  # values are never echoed
    assert "not a valid value" in error.detail


def test_errors_in_the_first_entry_and_in_later_statements_are_found_too() -> None:
    data = _statement(
        3,
        statements=3,
        bad={
            1: _entry_xml(1).replace("<CdtDbtInd>CRDT", "<CdtDbtInd>XXXX"),
            8: _entry_xml(8, currency="eur"),
        },
    )
    with pytest.raises(MessageRejected) as caught:
        _read(data)
    assert sorted(e.path or "" for e in caught.value.errors) == [
        "/Document/BkToCstmrStmt/Stmt[1]/Ntry[1]/CdtDbtInd",
        "/Document/BkToCstmrStmt/Stmt[3]/Ntry[2]/Amt/@Ccy",
    ]
    assert all("XXXX" not in e.detail and "eur" not in e.detail for e in caught.value.errors)


def test_a_misplaced_entry_is_caught_by_the_skeleton() -> None:
    data = _statement(2).replace(b"<Bal>", _entry_xml(99).encode() + b"<Bal>", 1)
    with pytest.raises(MessageRejected) as caught:
        _read(data)
    assert caught.value.errors[0].path == "/Document/BkToCstmrStmt/Stmt[1]/Ntry[1]"
    assert "not expected" in caught.value.errors[0].detail


def test_amounts_must_fit_the_currency() -> None:
    data = _statement(3, bad={2: _entry_xml(2, amount="1.005")})
    with pytest.raises(MessageRejected) as caught:
        _read(data)
    assert [(e.path, e.detail) for e in caught.value.errors] == [
        (
            "/Document/BkToCstmrStmt/Stmt[1]/Ntry[2]/Amt",
            "The amount has more decimal places than EUR allows",
        )
    ]


def test_five_fraction_digits_that_fit_are_fine() -> None:
    (entry,) = [
        i for i in _read(_statement(1, bad={1: _entry_xml(1, amount="12.34000")}))
        if isinstance(i, SettlementEntry)
    ]  # fmt: skip
    assert entry.amount.value == "12.34"


def test_errors_are_capped() -> None:
    bad = {n: _entry_xml(n, amount="x") for n in range(1, 101)}
    with pytest.raises(MessageRejected) as caught:
        _read(_statement(100, bad=bad), max_errors=5)
    assert len(caught.value.errors) == 5
    assert "first errors only" in caught.value.detail


def test_malformed_xml_is_rejected_with_its_position() -> None:
    with pytest.raises(MessageRejected) as caught:
        _read(_statement(5).replace(b"</Stmt>", b"</Stmnt>"))
    assert caught.value.code == "malformed_xml"
    (error,) = caught.value.errors
    assert error.line is not None and error.line > 5


def test_doctype_and_entities_are_refused() -> None:
    data = (
        b'<?xml version="1.0"?>\n<!DOCTYPE Document [<!ENTITY x "y">]>\n'
        + _statement(1).split(b"\n", 1)[1]
    )
    with pytest.raises(MessageRejected, match="DOCTYPE"):
        _read(data)


@pytest.mark.parametrize(
    "root",
    [
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"/>',
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.99"/>',
        b"<Document/>",
        b'<Other xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"/>',
    ],
)
def test_unsupported_messages_are_refused(root: bytes) -> None:
    with pytest.raises(MessageRejected) as caught:
        _read(root)
    assert caught.value.code == "unsupported_message"


def test_without_validation_the_same_entries_come_out() -> None:
    data = _statement(5, statements=2)
    validated = [i for i in _read(data) if isinstance(i, SettlementEntry)]
    trusted = [i for i in _read(data, validate=False) if isinstance(i, SettlementEntry)]
    assert validated == trusted
    assert [e.seq for e in trusted] == list(range(1, 11))


def test_pending_entries_are_not_settlement() -> None:
    data = _statement(2).replace(b"<Sts>BOOK</Sts>", b"<Sts>PDNG</Sts>", 1)
    entries = [i for i in _read(data) if isinstance(i, SettlementEntry)]
    assert [e.seq for e in entries] == [2]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Element '{urn:x}CdtDbtInd': [facet 'enumeration'] The value 'XXX' is not an "
            "element of the set {'CRDT', 'DBIT'}.",
            (
                "[facet 'enumeration'] The value is not an element of the set {'CRDT', 'DBIT'}.",
                None,
            ),
        ),
        (
            "Element '{urn:x}Amt', attribute 'Ccy': [facet 'pattern'] The value 'eur' is not "
            "accepted by the pattern '[A-Z]{3,3}'.",
            ("[facet 'pattern'] The value is not accepted by the pattern '[A-Z]{3,3}'.", "Ccy"),
        ),
        (
            "Element '{urn:x}Id': '1234567890123' is not a valid value of the atomic type "
            "'{urn:x}Max35Text'.",
            ("The value is not a valid value of the atomic type 'Max35Text'.", None),
        ),
    ],
)
def test_messages_never_echo_values(message: str, expected: tuple[str, str | None]) -> None:
    assert sanitize(message) == expected


def test_the_shipped_schemas_are_the_official_ones() -> None:
    import hashlib

    listed = {}
    for line in (catalog.schema_dir() / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        listed[name] = digest
    shipped = {path.name for path in catalog.schema_dir().glob("*.xsd")}
    assert shipped == set(listed) == {d.xsd_path.name for d in catalog.DEFINITIONS.values()}
    for name, digest in listed.items():
        assert hashlib.sha256((catalog.schema_dir() / name).read_bytes()).hexdigest() == digest
