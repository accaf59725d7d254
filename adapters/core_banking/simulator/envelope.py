"""SOAP 1.1 envelopes for the simulator, with lxml: parse and validate requests against the
contract's XSD, build responses and typed faults.

Independent of the zeep adapter on purpose: the simulator checks what the adapter sends with
its own reading of the contract.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from lxml import etree
from lxml.builder import ElementMaker

from adapters.core_banking.contract import NAMESPACE, OPERATIONS, SOAP_ENV, xsd_path

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PW_TEXT_KIND = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordText"
)
PW_DIGEST_KIND = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest"
)
EXTENSION_NS = "urn:example-bank:core-extensions"

CB = ElementMaker(namespace=NAMESPACE, nsmap={"cb": NAMESPACE})
_SOAP = ElementMaker(namespace=SOAP_ENV, nsmap={"soap-env": SOAP_ENV})
_PLAIN = ElementMaker()


def _parser() -> etree.XMLParser:
    # No DTDs, entities or network: a SOAP endpoint must not be an XXE or SSRF vector.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@functools.lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(xsd_path()), _parser()))


class SoapRequestError(Exception):
    """A request the simulator refuses before any business logic (rendered as a fault)."""

    def __init__(
        self, code: str, message: str, *, field: str | None = None, faultcode: str = "Client"
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.faultcode = faultcode


@dataclass(frozen=True)
class SoapRequest:
    operation: str
    body: etree._Element
    message_id: str
    source_system: str
    security: etree._Element | None

    def text(self, name: str) -> str | None:
        return self.body.findtext(f"{{{NAMESPACE}}}{name}")

    def required(self, name: str) -> str:
        value = self.text(name)
        assert value is not None, name  # the XSD made it required
        return value

    def amount(self, name: str = "Amount") -> tuple[Decimal, str]:
        node = self.body.find(f"{{{NAMESPACE}}}{name}")
        assert node is not None and node.text is not None
        return Decimal(node.text.strip()), str(node.get("Ccy"))

    def datetime(self, name: str) -> datetime | None:
        value = self.text(name)
        return parse_datetime(value) if value is not None else None

    def date(self, name: str) -> date:
        return date.fromisoformat(self.required(name).strip()[:10])


def parse_datetime(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _first_error(log: Any) -> tuple[str, str | None]:
    error = log[0] if len(log) else None
    if error is None:  # pragma: no cover - lxml always logs why validation failed
        return "Schema validation failed", None
    field = error.path.rsplit("/", 1)[-1].split(":")[-1].split("[")[0] if error.path else None
    return f"line {error.line}: {error.message}"[:140], field


def parse_request(data: bytes) -> SoapRequest:
    """Parse one request and validate its header and body against the contract."""
    try:
        doc = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise SoapRequestError("MALFORMED_REQUEST", f"Not XML: {exc}"[:140]) from None
    if doc.getroottree().docinfo.doctype:
        raise SoapRequestError("MALFORMED_REQUEST", "DTDs are not accepted")
    if doc.tag != f"{{{SOAP_ENV}}}Envelope":
        if etree.QName(doc).localname == "Envelope":
            raise SoapRequestError(
                "MALFORMED_REQUEST",
                "Only SOAP 1.1 envelopes are accepted",
                faultcode="VersionMismatch",
            )
        raise SoapRequestError("MALFORMED_REQUEST", "Not a SOAP envelope")
    header = doc.find(f"{{{SOAP_ENV}}}Header")
    body = doc.find(f"{{{SOAP_ENV}}}Body")
    if body is None:
        raise SoapRequestError("MALFORMED_REQUEST", "The envelope has no Body")
    children = [child for child in body if isinstance(child.tag, str)]
    if len(children) != 1:
        raise SoapRequestError("MALFORMED_REQUEST", "The Body must hold exactly one element")
    request = children[0]
    qname = etree.QName(request)
    if qname.namespace != NAMESPACE or qname.localname not in OPERATIONS:
        raise SoapRequestError(
            "UNSUPPORTED_OPERATION", f"Unknown operation {qname.localname}"[:140]
        )

    request_header = security = None
    for element in header if header is not None else ():
        if not isinstance(element.tag, str):
            continue
        if element.tag == f"{{{NAMESPACE}}}RequestHeader":
            request_header = element
        elif element.tag == f"{{{WSSE}}}Security":
            security = element
        elif element.get(f"{{{SOAP_ENV}}}mustUnderstand") in ("1", "true"):
            raise SoapRequestError(
                "MUST_UNDERSTAND",
                f"Header {etree.QName(element).localname} not understood",
                faultcode="MustUnderstand",
            )
    if request_header is None:
        raise SoapRequestError("SCHEMA_VALIDATION", "RequestHeader is missing", field="Header")

    xsd = schema()
    for element in (request_header, request):
        if not xsd.validate(element):
            message, field = _first_error(xsd.error_log)
            raise SoapRequestError("SCHEMA_VALIDATION", message, field=field)

    return SoapRequest(
        operation=qname.localname,
        body=request,
        message_id=str(request_header.findtext(f"{{{NAMESPACE}}}MessageId")),
        source_system=str(request_header.findtext(f"{{{NAMESPACE}}}SourceSystem")),
        security=security,
    )


def message_id_of(data: bytes) -> str | None:
    """Best effort: the MessageId of a request that failed validation (to echo it)."""
    try:
        doc = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError:
        return None
    value = doc.findtext(f".//{{{NAMESPACE}}}RequestHeader/{{{NAMESPACE}}}MessageId")
    return value if value and len(value) <= 35 else None


def check_username_token(security: etree._Element | None, username: str, password: str) -> bool:
    """WS-Security UsernameToken (PasswordText or PasswordDigest), compared in constant time."""
    if security is None:
        return False
    token = security.find(f"{{{WSSE}}}UsernameToken")
    if token is None:
        return False
    given_user = token.findtext(f"{{{WSSE}}}Username") or ""
    node = token.find(f"{{{WSSE}}}Password")
    if node is None:
        return False
    given = (node.text or "").strip()
    kind = node.get("Type", PW_TEXT_KIND)
    if kind == PW_DIGEST_KIND:
        nonce = token.findtext(f"{{{WSSE}}}Nonce") or ""
        created = token.findtext(f"{{{WSU}}}Created") or ""
        try:
            raw_nonce = base64.b64decode(nonce)
        except ValueError:
            return False
        digest = hashlib.sha1(raw_nonce + created.encode() + password.encode()).digest()  # noqa: S324 - WSS UsernameToken profile mandates SHA-1
        expected = base64.b64encode(digest).decode()
    elif kind == PW_TEXT_KIND:
        expected = password
    else:
        return False
    user_ok = hmac.compare_digest(given_user.encode(), username.encode())
    return hmac.compare_digest(given.encode(), expected.encode()) and user_ok


# --- building responses ---------------------------------------------------------------------------


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def amount(name: str, value: Decimal, currency: str) -> etree._Element:
    element = CB(name, f"{value:.5f}")
    element.set("Ccy", currency)
    return element


def extension_elements() -> list[etree._Element]:
    ext = ElementMaker(namespace=EXTENSION_NS, nsmap={"ext": EXTENSION_NS})
    return [ext.BankExtension(ext.Branch("0001"), ext.Channel("API"))]


def _envelope(header: etree._Element | None, body: etree._Element, *, validate: bool) -> bytes:
    if validate:
        xsd = schema()
        for element in (header, body) if header is not None else (body,):
            if element.tag == f"{{{SOAP_ENV}}}Fault":
                continue
            if not xsd.validate(element):
                raise AssertionError(f"simulator built an invalid response: {xsd.error_log}")
    parts = [_SOAP.Header(header)] if header is not None else []
    envelope = _SOAP.Envelope(*parts, _SOAP.Body(body))
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def _response_header(
    message_id: str | None, now: datetime, extensions: bool
) -> etree._Element | None:
    if message_id is None:
        return None
    header = CB.ResponseHeader(CB.MessageId(message_id), CB.RespondedAt(stamp(now)))
    if extensions:
        header.extend(extension_elements())
    return header


def response(
    operation: str,
    children: list[etree._Element],
    *,
    message_id: str,
    now: datetime,
    extensions: bool = False,
    validate: bool = False,
) -> bytes:
    body = CB(f"{operation}Response", *children)
    if extensions:
        body.extend(extension_elements())
    return _envelope(_response_header(message_id, now, extensions), body, validate=validate)


def fault(
    code: str,
    category: str,
    message: str,
    *,
    retryable: bool,
    field: str | None,
    message_id: str | None,
    now: datetime,
    faultcode: str | None = None,
    validate: bool = False,
) -> bytes:
    detail = CB.CoreBankingFault(
        CB.Code(code),
        CB.Category(category),
        CB.Message(message[:140] or code),
        CB.Retryable("true" if retryable else "false"),
    )
    if field:
        detail.append(CB.Field(field[:140]))
    if validate and not schema().validate(detail):
        raise AssertionError(f"simulator built an invalid fault: {schema().error_log}")
    soap_code = faultcode or ("Client" if category == "CLIENT" else "Server")
    body = _SOAP.Fault(
        _PLAIN.faultcode(f"soap-env:{soap_code}"),
        _PLAIN.faultstring(f"{code}: {message}"[:200]),
        _PLAIN.detail(detail),
    )
    return _envelope(_response_header(message_id, now, False), body, validate=validate)
