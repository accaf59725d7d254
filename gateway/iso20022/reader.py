"""Stream a camt.053/camt.054 message: validate it against its XSD and map it to our entries.

Memory stays bounded however large the message is. lxml's `iterparse` builds the tree as it
reads; every entry (`Ntry`) is mapped to a `SettlementEntry` when it ends and then removed from
the tree. lxml cannot validate a stream against a schema, so validation is split, with the
same result as validating the whole document:

* every entry except the first of a run of entries is validated on its own, in place, against
  the schema's own entry type (`catalog.load_schema` declares it globally), then dropped;
* likewise every record (`Stmt`/`Ntfctn`) except the first of a run is validated on its own
  when it ends (with the one entry it still holds), then dropped;
* what remains — the group header, the first record and the first entry of each run — is the
  *skeleton*, validated against the full schema when the document ends.

`Ntry` and the records are `maxOccurs="unbounded"` in every supported version, so a run of
them is valid where one of them is; collapsing runs to their first element therefore keeps the
skeleton valid exactly when the document's structure is. Each element is validated once, with
its real line number, and errors name it by its path in the original document
(`/Document/BkToCstmrStmt/Stmt[1]/Ntry[37]/Amt`). The held tree is one group header, one record
header and one entry per run: a few kilobytes.

Beyond the schema, amounts must fit their currency's minor unit (`8.855 EUR` is schema-valid but
not money). DOCTYPE declarations are refused outright and entities are never expanded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Protocol

from lxml import etree

from gateway.domain.errors import FieldError
from gateway.domain.money import Money, MoneyError
from gateway.domain.settlement import SettlementEntry, Side
from gateway.iso20022 import catalog
from gateway.iso20022.catalog import MessageDefinition

DEFAULT_MAX_ERRORS = 20
CHUNK = 64 * 1024
PEEK_LIMIT = 1024 * 1024  # the root element must start within the first MiB
NOT_PROVIDED = "NOTPROVIDED"  # ISO 20022's placeholder for an absent end-to-end id


@dataclass(frozen=True)
class XmlError:
    """One reason a message was rejected: where (line, element path) and what."""

    detail: str
    line: int | None = None
    column: int | None = None
    path: str | None = None

    def as_problem_entry(self) -> FieldError:
        entry: FieldError = {"detail": self.detail}
        if self.path:
            entry["path"] = self.path
        if self.line is not None:
            entry["line"] = self.line
        if self.column is not None:
            entry["column"] = self.column
        return entry


class Readable(Protocol):
    """Anything with `read(size)`: a request body, a file, an archive reader."""

    def read(self, size: int = -1, /) -> bytes: ...


class MessageRejected(Exception):
    """The message is not acceptable; `errors` say where and why (values never echoed)."""

    def __init__(self, code: str, detail: str, errors: list[XmlError] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.errors = errors or []


@dataclass(frozen=True)
class Header:
    definition: MessageDefinition
    message_id: str
    created_at: datetime | None
    last_page: bool = True  # GrpHdr/MsgPgntn/LastPgInd (absent: a single page)


@dataclass(frozen=True)
class Balance:
    code: str  # OPBD, CLBD, ITBD, ...
    amount: Money
    side: Side
    on: date | None


@dataclass(frozen=True)
class Record:
    """A statement (camt.053 `Stmt`) or notification (camt.054 `Ntfctn`) of one account."""

    index: int
    id: str
    account: str
    currency: str | None
    created_at: datetime | None
    from_at: datetime | None
    to_at: datetime | None
    balances: tuple[Balance, ...] = ()
    last_page: bool = True

    def balance(self, code: str) -> Balance | None:
        return next((b for b in self.balances if b.code == code), None)


Item = Header | Record | SettlementEntry

_NAMESPACE = re.compile(r"\{[A-Za-z][A-Za-z0-9+.-]*:[^}]*\}")
_ELEMENT_PREFIX = re.compile(r"^Element '[^']*'(?:, attribute '([^']*)')?: ")
_QUOTED_VALUE = re.compile(r"The value '(?:[^'\\]|\\.)*'")
_LEADING_VALUE = re.compile(r"^'(?:[^'\\]|\\.)*' is not a valid value")
_LOCATION = re.compile(r",? line \d+, column \d+$")
_STEP = re.compile(r"^(?:(?P<prefix>[^:\[]+):)?(?P<name>[^\[]+)(?:\[(?P<index>\d+)\])?$")


def sanitize(message: str) -> tuple[str, str | None]:
    """libxml2's message without namespaces, the element prefix or submitted values.

    Returns (detail, attribute name if the error is about an attribute). Values are dropped
    because a rejected field may be an account number.
    """
    text = _NAMESPACE.sub("", message.strip())
    attribute = None
    match = _ELEMENT_PREFIX.match(text)
    if match:
        attribute = match.group(1)
        text = text[match.end() :]
    text = _QUOTED_VALUE.sub("The value", text)
    text = _LEADING_VALUE.sub("The value is not a valid value", text)
    return _LOCATION.sub("", text), attribute


def _text(node: etree._Element | None) -> str | None:
    if node is None or node.text is None:
        return None
    value = node.text.strip()
    return value or None


def _date(text: str | None) -> date | None:
    if not text:
        return None
    return date.fromisoformat(text[:10])  # xs:date may carry a zone suffix


def _datetime(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class _Invalid(Exception):
    """A value that passed the schema (or was not validated) but is not usable."""

    def __init__(self, detail: str, node: etree._Element) -> None:
        super().__init__(detail)
        self.detail = detail
        self.node = node


class StreamReader:
    """Iterate the items of one message: its `Header`, then each `Record` before its entries.

    With `validate=False` (re-reading a message that was validated when it arrived) nothing is
    checked against the schema. Raises `MessageRejected` when the message is not acceptable;
    with validation on, that may happen only once the whole message has been read (nothing
    must be applied before then).
    """

    def __init__(
        self,
        source: Readable,
        *,
        validate: bool = True,
        max_errors: int = DEFAULT_MAX_ERRORS,
    ) -> None:
        self.source = source
        self.validate = validate
        self.max_errors = max_errors
        self.errors: list[XmlError] = []
        self.header: Header | None = None
        self.definition: MessageDefinition | None = None
        self.entry_count = 0
        self.record_count = 0
        self._schema: etree.XMLSchema | None = None
        self._q = ""
        self._ordinals: dict[etree._Element, int] = {}  # held (first-of-run) elements
        self._current: tuple[etree._Element, int] | None = None
        self._seen: set[tuple[int | None, str | None, str]] = set()
        self._entry_names: dict[str, str] = {}
        self._e2e_tag = self._core_ref_tag = ""

    # --- errors ----------------------------------------------------------------------------

    def _fail(self, code: str, detail: str, errors: list[XmlError] | None = None) -> None:
        raise MessageRejected(code, detail, errors)

    def _add(self, error: XmlError) -> None:
        key = (error.line, error.path, error.detail)
        if key in self._seen:  # a held element can be checked twice (mapping, then schema)
            return
        self._seen.add(key)
        self.errors.append(error)
        if len(self.errors) >= self.max_errors:
            self._reject()

    def _reject(self) -> None:
        count = len(self.errors)
        more = " (first errors only)" if count >= self.max_errors else ""
        self._fail(
            "invalid_message",
            f"The message does not conform to its schema or content rules: {count} error(s){more}",
            list(self.errors),
        )

    def _local(self, node: etree._Element) -> str:
        tag = node.tag
        if not isinstance(tag, str):
            return ""
        return tag[len(self._q) :] if tag.startswith(self._q) else etree.QName(tag).localname

    def _path(self, node: etree._Element) -> str:
        """The node's path in the original document (collapsed runs counted back in)."""
        record = self.definition.record_element if self.definition else ""
        parts: list[str] = []
        current: etree._Element | None = node
        while current is not None:
            name = self._local(current)
            parent = current.getparent()
            index: int | None = None
            if self._current is not None and current is self._current[0]:
                index = self._current[1]
            elif current in self._ordinals:
                index = self._ordinals[current]
            elif parent is not None:
                same = [sibling for sibling in parent if sibling.tag == current.tag]
                if len(same) > 1 or name in ("Ntry", record):
                    index = same.index(current) + 1
            parts.append(f"{name}[{index}]" if index else name)
            current = parent
        return "/" + "/".join(reversed(parts))

    def _resolve(self, root: etree._Element, path: str | None) -> etree._Element:
        """Find the node a libxml2 error path (`/*/*[2]/*[10]`) names under `root`."""
        node = root
        for step in [part for part in (path or "").split("/") if part][1:]:
            match = _STEP.match(step)
            if match is None:
                return node
            elements = [child for child in node if isinstance(child.tag, str)]
            index = int(match.group("index") or 1)
            if match.group("name") != "*":  # a prefixed name: count same-name siblings
                elements = [
                    child
                    for child in elements
                    if etree.QName(child.tag).localname == match.group("name")
                ]
            if not 0 < index <= len(elements):
                return node
            node = elements[index - 1]
        return node

    def _check(self, root: etree._Element, ordinal: int | None = None) -> None:
        """Validate `root` (an entry, a record or the skeleton) in place; collect errors."""
        assert self._schema is not None
        if self._schema.validate(root):
            return
        self._current = (root, ordinal) if ordinal is not None else None
        try:
            for entry in self._schema.error_log:
                detail, attribute = sanitize(entry.message)
                node = self._resolve(root, entry.path)
                path = self._path(node) + (f"/@{attribute}" if attribute else "")
                self._add(XmlError(detail, line=entry.line or None, path=path))
        finally:
            self._current = None

    # --- mapping ---------------------------------------------------------------------------

    def _money(self, node: etree._Element) -> Money:
        currency = node.get("Ccy") or ""
        try:
            amount = Decimal((node.text or "").strip())
        except InvalidOperation:
            raise _Invalid("The amount is not a decimal number", node) from None
        try:
            return Money.from_decimal(amount, currency)
        except MoneyError as exc:
            if exc.field == "currency":
                raise _Invalid("The currency is not an active ISO 4217 code", node) from None
            raise _Invalid(
                f"The amount has more decimal places than {currency} allows", node
            ) from None

    def _date_choice(self, node: etree._Element | None) -> tuple[date | None, datetime | None]:
        """`<Dt>` or `<DtTm>` (DateAndDateTimeChoice): the date as the core wrote it."""
        if node is None:
            return None, None
        for child in node:
            tag = child.tag
            name = tag[len(self._q) :] if isinstance(tag, str) else ""
            try:
                if name == "Dt":
                    return _date(_text(child)), None
                if name == "DtTm":
                    moment = _datetime(_text(child))
                    return (moment.date() if moment else None), moment
            except ValueError:
                raise _Invalid("The date is not a valid ISO 8601 date", child) from None
        return None, None

    def _header(self, node: etree._Element) -> Header:
        assert self.definition is not None
        message_id = created = None
        last_page = True
        for child in node:
            name = self._local(child)
            if name == "MsgId":
                message_id = _text(child)
            elif name == "CreDtTm":
                try:
                    created = _datetime(_text(child))
                except ValueError:
                    created = None
            elif name == "MsgPgntn":
                last_page = self._last_page(child)
        if not message_id:
            self._fail(
                "invalid_message",
                "The group header has no message id",
                [XmlError("MsgId is required", line=node.sourceline, path=self._path(node))],
            )
        assert message_id is not None
        return Header(self.definition, message_id, created, last_page)

    def _last_page(self, node: etree._Element) -> bool:
        for child in node:
            if self._local(child) == "LastPgInd":
                return (_text(child) or "true").lower() not in ("false", "0")
        return True

    def _record(self, node: etree._Element, index: int) -> Record:
        record_id = account = currency = None
        created = from_at = to_at = None
        balances: list[Balance] = []
        last_page = True
        for child in node:
            name = self._local(child)
            if name == "Id":
                record_id = _text(child)
            elif name == "CreDtTm":
                created = self._moment(child)
            elif name == "FrToDt":
                for part in child:
                    if self._local(part) == "FrDtTm":
                        from_at = self._moment(part)
                    elif self._local(part) == "ToDtTm":
                        to_at = self._moment(part)
            elif name == "Acct":
                account, currency = self._account(child)
            elif name == "Bal":
                balance = self._balance(child)
                if balance is not None:
                    balances.append(balance)
            elif name in ("StmtPgntn", "NtfctnPgntn"):
                last_page = self._last_page(child)
            elif name == "Ntry":
                break
        if not account:
            raise _Invalid("The record names no account (Acct/Id)", node)
        return Record(
            index=index,
            id=record_id or "",
            account=account,
            currency=currency,
            created_at=created,
            from_at=from_at,
            to_at=to_at,
            balances=tuple(balances),
            last_page=last_page,
        )

    def _moment(self, node: etree._Element) -> datetime | None:
        try:
            return _datetime(_text(node))
        except ValueError:
            raise _Invalid("The time is not a valid ISO 8601 date-time", node) from None

    def _account(self, node: etree._Element) -> tuple[str | None, str | None]:
        account = currency = None
        for child in node:
            name = self._local(child)
            if name == "Id":
                for choice in child:
                    kind = self._local(choice)
                    if kind == "IBAN":
                        account = _text(choice)
                    elif kind == "Othr":
                        account = next(
                            (_text(part) for part in choice if self._local(part) == "Id"), None
                        )
            elif name == "Ccy":
                currency = _text(child)
        return account, currency

    def _balance(self, node: etree._Element) -> Balance | None:
        code = side = None
        amount: Money | None = None
        on: date | None = None
        for child in node:
            name = self._local(child)
            if name == "Tp":
                code = next(
                    (
                        _text(leaf)
                        for leaf in child.iter()
                        if self._local(leaf) in ("Cd", "Prtry") and len(leaf) == 0
                    ),
                    None,
                )
            elif name == "Amt":
                amount = self._money(child)
            elif name == "CdtDbtInd":
                side = _text(child)
            elif name == "Dt":
                on, moment = self._date_choice(child)
                on = on or (moment.date() if moment else None)
        if code is None or amount is None or side not in ("CRDT", "DBIT"):
            return None
        return Balance(code, amount, Side.from_iso(side), on)

    def _entry(self, node: etree._Element, record: Record, seq: int) -> SettlementEntry | None:
        """Map one `Ntry`; None for entries that are not booked (pending, information)."""
        amount: Money | None = None
        side = status = core_reference = entry_reference = None
        reversal = False
        booking: date | None = None
        booked_at: datetime | None = None
        value: date | None = None
        references: list[str] = []
        fallback_core: str | None = None
        names = self._entry_names
        for child in node:
            name = names.get(child.tag)
            if name is None:
                continue
            if name == "Amt":
                amount = self._money(child)
            elif name == "CdtDbtInd":
                side = _text(child)
            elif name == "RvslInd":
                reversal = (_text(child) or "").lower() in ("true", "1")
            elif name == "Sts":
                status = _text(child) if len(child) == 0 else _text(child[0])
            elif name == "BookgDt":
                booking, booked_at = self._date_choice(child)
            elif name == "ValDt":
                value, moment = self._date_choice(child)
                value = value or (moment.date() if moment else None)
            elif name == "AcctSvcrRef":
                core_reference = _text(child)
            elif name == "NtryRef":
                entry_reference = _text(child)
            else:  # NtryDtls
                for leaf in child.iter(self._e2e_tag, self._core_ref_tag):
                    if leaf.tag == self._e2e_tag:
                        text = _text(leaf)
                        if text and text != NOT_PROVIDED and text not in references:
                            references.append(text)
                    elif fallback_core is None:
                        fallback_core = _text(leaf)
        if amount is None or side not in ("CRDT", "DBIT"):
            raise _Invalid("The entry has no amount or credit/debit indicator", node)
        if status is not None and status != "BOOK":
            return None
        booking_date = booking or value or (record.created_at.date() if record.created_at else None)
        if booking_date is None:
            raise _Invalid("The entry has no booking date", node)
        return SettlementEntry(
            account=record.account,
            amount=amount,
            side=Side.from_iso(side),
            booking_date=booking_date,
            value_date=value,
            # A batch entry (several transactions, several references) matches no single one.
            reference=references[0] if len(references) == 1 else None,
            core_reference=core_reference or fallback_core,
            entry_reference=entry_reference,
            reversal=reversal,
            booked_at=booked_at,
            record_id=record.id,
            seq=seq,
        )

    # --- the stream ------------------------------------------------------------------------

    def _start(self, root: etree._Element) -> None:
        if root.getroottree().docinfo.doctype:
            self._fail(
                "invalid_message",
                "DOCTYPE declarations are not accepted",
                [XmlError("DOCTYPE declarations are not accepted", line=1)],
            )
        name = etree.QName(root)
        definition = catalog.definition_for(name.namespace)
        if definition is None or name.localname != "Document":
            self._fail(
                "unsupported_message",
                "Not a supported ISO 20022 message: expected a Document in one of the "
                f"namespaces of {', '.join(catalog.SUPPORTED)}",
                [
                    XmlError(
                        "unsupported root element or namespace",
                        line=root.sourceline,
                        path="/" + name.localname,
                    )
                ],
            )
        assert definition is not None
        self.definition = definition
        self._q = q = "{" + definition.namespace + "}"
        self._entry_names = {
            q + name: name
            for name in (
                "Amt", "CdtDbtInd", "RvslInd", "Sts", "BookgDt", "ValDt", "AcctSvcrRef",
                "NtryRef", "NtryDtls",
            )
        }  # fmt: skip
        self._e2e_tag, self._core_ref_tag = q + "EndToEndId", q + "AcctSvcrRef"
        if self.validate:
            self._schema = catalog.schema(definition)

    def _peek(self) -> bytes:
        """Read until the root element starts: it says which message (and schema) this is.

        The main parse then asks lxml for only three kinds of element (group header, entry,
        record), so Python sees a handful of events per entry instead of one per element.
        """
        parser = etree.XMLPullParser(
            events=("start",),
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            huge_tree=False,
        )
        seen = bytearray()
        while len(seen) < PEEK_LIMIT:
            chunk = self.source.read(CHUNK)
            if not chunk:
                break
            seen += chunk
            parser.feed(chunk)
            for _event, root in parser.read_events():
                self._start(root)
                return bytes(seen)
        if not seen.strip():
            self._fail("invalid_message", "The request body is empty")
        parser.close()  # raises the syntax error, if that is what stopped us
        self._fail("invalid_message", "No root element found at the start of the message")
        raise AssertionError("unreachable")

    def __iter__(self) -> Iterator[Item]:
        try:
            yield from self._items()
        except etree.XMLSyntaxError as exc:
            detail, _attribute = sanitize(str(exc.msg or exc))
            self.errors.append(XmlError(detail, line=exc.lineno or None, column=exc.offset or None))
            raise MessageRejected(
                "malformed_xml", "The message is not well-formed XML", list(self.errors)
            ) from None

    def _items(self) -> Iterator[Item]:
        prefix = self._peek()
        assert self.definition is not None
        q = self._q
        header_tag, entry_tag = q + "GrpHdr", q + "Ntry"
        record_tag, document_tag = q + self.definition.record_element, q + "Document"
        context = etree.iterparse(
            _Replay(prefix, self.source),
            events=("end",),
            tag=(header_tag, entry_tag, record_tag),
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        state = _State()
        for _event, node in context:
            tag = node.tag
            parent = node.getparent()
            if tag == entry_tag:
                if parent is not None and parent.tag == record_tag:
                    yield from self._on_entry(node, parent, state)
            elif tag == record_tag:
                grandparent = parent.getparent() if parent is not None else None
                if grandparent is not None and grandparent.tag == document_tag:
                    yield from self._on_record_end(node, state)
            elif self.header is None and parent is not None and parent.getparent() is not None:
                self.header = self._header(node)
                yield self.header
        root = context.root
        if root is None or root.tag != document_tag:
            self._fail("invalid_message", "The message has no Document element")
        if self.validate:
            self._check(root)  # the skeleton
        if self.header is None:
            self._fail(
                "invalid_message",
                "The message has no group header (GrpHdr)",
                list(self.errors) or [XmlError("GrpHdr is required", path="/Document")],
            )
        if self.errors:
            self._reject()

    def _announce(self, record_node: etree._Element, state: _State) -> Iterator[Item]:
        if state.record_node is record_node:
            return
        if self.header is None:
            self._fail(
                "invalid_message",
                "The group header (GrpHdr) must come before the first record",
                [
                    XmlError(
                        "GrpHdr is expected first",
                        line=record_node.sourceline,
                        path=self._path(record_node),
                    )
                ],
            )
        state.record_index += 1
        state.entry_index = 0
        state.record_node = record_node
        self._ordinals[record_node] = state.record_index  # its position in the original
        try:
            state.record = self._record(record_node, state.record_index)
        except _Invalid as exc:
            state.record = None
            self._invalid(exc, record_node)
            return
        self.record_count += 1
        yield state.record

    def _invalid(self, exc: _Invalid, fragment: etree._Element) -> None:
        """A mapping failure: report the schema's errors for the fragment if it has any,
        else the content rule that failed."""
        if self.validate:
            before = len(self.errors)
            self._check(fragment)
            if len(self.errors) > before:
                return
        self._add(XmlError(exc.detail, line=exc.node.sourceline, path=self._path(exc.node)))

    def _on_entry(
        self, node: etree._Element, record_node: etree._Element, state: _State
    ) -> Iterator[Item]:
        yield from self._announce(record_node, state)
        state.entry_index += 1
        state.seq += 1
        ordinal = state.entry_index
        previous = node.getprevious()
        held = previous is None or previous.tag != node.tag
        if held:
            self._ordinals[node] = ordinal
        elif self.validate:
            before = len(self.errors)
            self._check(node, ordinal)
            if len(self.errors) > before:
                record_node.remove(node)
                return
        entry: SettlementEntry | None = None
        if state.record is not None:
            self._current = (node, ordinal)
            try:
                entry = self._entry(node, state.record, state.seq)
            except _Invalid as exc:
                self._invalid(exc, node)
            finally:
                self._current = None
        if not held:
            record_node.remove(node)
        if entry is not None:
            self.entry_count += 1
            yield entry

    def _on_record_end(self, node: etree._Element, state: _State) -> Iterator[Item]:
        yield from self._announce(node, state)  # a record without entries
        previous = node.getprevious()
        if previous is None or previous.tag != node.tag:
            return  # held: validated with the skeleton
        if self.validate:
            self._check(node)
        # Its held first entry goes with it.
        self._ordinals.pop(node, None)
        for child in node:
            self._ordinals.pop(child, None)
        parent = node.getparent()
        assert parent is not None
        parent.remove(node)


class _Replay:
    """The bytes already read to find the root, then the rest of the source."""

    def __init__(self, prefix: bytes, source: Readable) -> None:
        self._prefix = prefix
        self._source = source

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size < 0 or size >= len(self._prefix):
                data, self._prefix = self._prefix, b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return self._source.read(size)


@dataclass
class _State:
    seq: int = 0
    record_index: int = 0
    entry_index: int = 0
    record: Record | None = None
    record_node: etree._Element | None = field(default=None, repr=False)


def read(
    source: Readable, *, validate: bool = True, max_errors: int = DEFAULT_MAX_ERRORS
) -> Iterator[Item]:
    """Convenience: iterate the items of one message (see `StreamReader`)."""
    return iter(StreamReader(source, validate=validate, max_errors=max_errors))
