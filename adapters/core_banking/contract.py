"""Where the core-banking contract lives and the names it defines (no behaviour).

Shared by the zeep adapter and the simulator so both read the same WSDL and XSD files; each
interprets them with its own code.
"""

from __future__ import annotations

from pathlib import Path

from gateway import resources

NAMESPACE = "urn:wallet-gateway:core-banking:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL_NAME = "core-banking.wsdl"
XSD_NAME = "core-banking.xsd"
SOAP_ACTION_PREFIX = f"{NAMESPACE}:"

READ_OPERATIONS = frozenset(
    {"GetAccount", "GetBalance", "GetTransactionStatus", "GetStatement", "Ping"}
)
POSTING_OPERATIONS = frozenset({"PlaceHold", "ReleaseHold", "PostTransfer", "ReverseTransfer"})
OPERATIONS = READ_OPERATIONS | POSTING_OPERATIONS


def contract_dir() -> Path:
    return resources.contracts_dir() / "core-banking"


def wsdl_path() -> Path:
    return contract_dir() / WSDL_NAME


def xsd_path() -> Path:
    return contract_dir() / XSD_NAME
