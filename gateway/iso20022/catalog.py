"""The supported camt messages and versions, and their schemas.

A message is identified by the namespace of its `Document` element (e.g.
`urn:iso:std:iso:20022:tech:xsd:camt.053.001.08`): nothing else in the document is trusted to
say what it is.

The shipped XSDs are the official ones, unmodified. For streaming validation each is loaded
once more with two extra *global* element declarations, `Ntry` and the record element (`Stmt`
or `Ntfctn`), typed with the schema's own types (e.g. `Ntry` of `ReportEntry2` in
camt.053.001.02). lxml can then validate a single entry or record in place, exactly as it would
be validated inside the whole document, while the rest of the document is validated as a
skeleton (see `reader`). The added declarations change nothing about what a `Document` may
contain.

lxml schema objects keep their error log in the object, so each thread gets its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lxml import etree

from gateway import resources

XS = "http://www.w3.org/2001/XMLSchema"
NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"


@dataclass(frozen=True)
class MessageDefinition:
    message: str  # camt.053 | camt.054
    version: str  # 001.02 ...
    kind: Literal["statement", "notification"]
    document_element: str  # BkToCstmrStmt | BkToCstmrDbtCdtNtfctn
    record_element: str  # Stmt | Ntfctn

    @property
    def name(self) -> str:
        return f"{self.message}.{self.version}"

    @property
    def namespace(self) -> str:
        return NAMESPACE_PREFIX + self.name

    @property
    def xsd_path(self) -> Path:
        return schema_dir() / f"{self.name}.xsd"


def _statement(version: str) -> MessageDefinition:
    return MessageDefinition("camt.053", version, "statement", "BkToCstmrStmt", "Stmt")


def _notification(version: str) -> MessageDefinition:
    return MessageDefinition("camt.054", version, "notification", "BkToCstmrDbtCdtNtfctn", "Ntfctn")


DEFINITIONS: dict[str, MessageDefinition] = {
    definition.namespace: definition
    for definition in (
        _statement("001.02"),
        _statement("001.03"),
        _statement("001.04"),
        _statement("001.08"),
        _notification("001.02"),
        _notification("001.04"),
        _notification("001.08"),
    )
}
SUPPORTED = tuple(sorted(definition.name for definition in DEFINITIONS.values()))


def schema_dir() -> Path:
    return resources.contracts_dir() / "iso20022"


def definition_for(namespace: str | None) -> MessageDefinition | None:
    return DEFINITIONS.get(namespace or "")


def by_name(name: str) -> MessageDefinition:
    """`camt.053.001.08` -> its definition (KeyError if unsupported)."""
    for definition in DEFINITIONS.values():
        if definition.name == name:
            return definition
    raise KeyError(name)


def _local_type(root: etree._Element, element: str) -> str:
    """The type of the (single) local declaration of `element` in a sequence."""
    types = {
        node.get("type")
        for node in root.iter(f"{{{XS}}}element")
        if node.get("name") == element
        and node.getparent() is not None
        and node.getparent().tag == f"{{{XS}}}sequence"
    }
    if len(types) != 1:
        raise ValueError(f"expected one type for {element}, found {sorted(map(str, types))}")
    return str(types.pop())


def load_schema(definition: MessageDefinition) -> etree.XMLSchema:
    """The official schema plus global `Ntry` and record declarations (see module doc)."""
    document = etree.parse(str(definition.xsd_path), etree.XMLParser(no_network=True))
    root = document.getroot()
    for element in ("Ntry", definition.record_element):
        etree.SubElement(root, f"{{{XS}}}element", name=element, type=_local_type(root, element))
    return etree.XMLSchema(document)


def load_official_schema(definition: MessageDefinition) -> etree.XMLSchema:
    """The schema exactly as shipped (tests use it to check generated messages)."""
    return etree.XMLSchema(etree.parse(str(definition.xsd_path), etree.XMLParser(no_network=True)))


_local = threading.local()


def schema(definition: MessageDefinition) -> etree.XMLSchema:
    """This thread's validator for a message version (built on first use, ~50 ms)."""
    cache: dict[str, etree.XMLSchema] | None = getattr(_local, "schemas", None)
    if cache is None:
        cache = _local.schemas = {}
    validator = cache.get(definition.name)
    if validator is None:
        validator = cache[definition.name] = load_schema(definition)
    return validator
