"""The `CoreBanking` Protocol over SOAP, with zeep, against `contracts/core-banking/`.

Rules this module owns (docs/core-banking.md has the tables):

* The WSDL is parsed once per process from the local contract; loading anything over the
  network is refused. Every adapter shares that parsed document and one pooled
  `requests.Session`; a zeep Client is safe to share across threads.
* Every call has explicit connect and operation timeouts, a fresh MessageId, the configured
  SourceSystem and, when configured, a WS-Security UsernameToken.
* Values are checked against the XSD facets before anything is sent (`facets.py`).
* Reads (GetAccount, GetBalance, GetTransactionStatus, GetStatement) are retried with bounded,
  jittered exponential back-off on transport errors and retryable faults.
* Postings (PlaceHold, ReleaseHold, PostTransfer, ReverseTransfer) are sent exactly once. A
  timeout, a dropped or garbled answer raises `OutcomeUnknown`: the caller asks
  `get_transaction_status` before anything else and never re-posts under a new reference.
* Logs carry the operation, duration and outcome; envelopes only at DEBUG, with account and
  phone numbers masked.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from copy import deepcopy
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import requests
import zeep
from lxml import etree
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from zeep import exceptions as zeep_errors
from zeep.wsdl import Document
from zeep.wsse.username import UsernameToken

from adapters.base import (
    CoreAccount,
    CoreBalance,
    CoreBankingError,
    CoreBankingUnavailable,
    HoldResult,
    OutcomeUnknown,
    PostingResult,
    StatementPage,
    TransactionStatus,
)
from adapters.core_banking import contract, facets, mapping
from adapters.http import TlsOptions, new_session
from gateway.domain.money import Money
from gateway.observability.context import outgoing_headers
from gateway.observability.logging import get_logger, mask, redact_text
from gateway.observability.metrics import CORE_BANKING_CALLS, CORE_BANKING_LATENCY

if TYPE_CHECKING:
    from gateway.settings import Settings

log = get_logger("adapters.core_banking")
_stdlib_log = logging.getLogger("adapters.core_banking")
T = TypeVar("T")

# Elements whose text is masked in DEBUG envelope logs.
_MASKED_ELEMENTS = frozenset(
    {"AccountNumber", "DebitAccount", "CreditAccount", "RegisteredMobile", "Name"}
)
_WSSE_PW_TAG = (
    "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}Password"
)


class RemoteLoadRefused(RuntimeError):
    """The contract tried to pull a document over the network."""


class _Transport(zeep.Transport):
    """zeep transport: local files only for the contract; (connect, read) timeouts for calls.

    It also records, per thread, whether the request was handed to the network, so a failure
    while *building* a request is never mistaken for a posting with an unknown outcome.
    """

    def __init__(self, session: requests.Session, timeout: tuple[float, float]) -> None:
        super().__init__(session=session, timeout=timeout[0], operation_timeout=timeout)
        self._local = threading.local()

    def load(self, url: str) -> bytes:
        if urlparse(url).scheme in ("http", "https"):
            raise RemoteLoadRefused(f"refusing to load {url}: the contract is read from disk")
        return super().load(url)

    def post(self, address: str, message: Any, headers: dict[str, str]) -> requests.Response:
        # zeep's own post() logs whole envelopes at DEBUG; ours masks them in the plugin.
        self._local.sent = True
        return self.session.post(
            address, data=message, headers=headers, timeout=self.operation_timeout
        )

    def reset_sent(self) -> None:
        self._local.sent = False

    @property
    def sent(self) -> bool:
        return bool(getattr(self._local, "sent", False))


def mask_envelope(envelope: etree._Element) -> str:
    """The envelope as text for DEBUG logs: account numbers, names and mobiles masked,
    WS-Security passwords removed, then the generic redaction on top."""
    copy = deepcopy(envelope)
    for element in copy.iter():
        if not isinstance(element.tag, str):
            continue
        local = etree.QName(element).localname
        if element.tag == _WSSE_PW_TAG:
            element.text = "[REDACTED]"
        elif local in _MASKED_ELEMENTS and element.text:
            element.text = mask(element.text)
    return redact_text(etree.tostring(copy, encoding="unicode"))


class _ObservabilityPlugin(zeep.Plugin):
    """Adds correlation headers to every call and logs masked envelopes at DEBUG."""

    def egress(
        self,
        envelope: etree._Element,
        http_headers: dict[str, str],
        operation: Any,
        binding_options: Any,
    ) -> tuple[etree._Element, dict[str, str]]:
        http_headers.update(outgoing_headers())
        if _stdlib_log.isEnabledFor(logging.DEBUG):
            log.debug(
                "core_banking_envelope_out",
                operation=operation.name,
                envelope=mask_envelope(envelope),
            )
        return envelope, http_headers

    def ingress(
        self, envelope: etree._Element, http_headers: Any, operation: Any
    ) -> tuple[etree._Element, Any]:
        if _stdlib_log.isEnabledFor(logging.DEBUG):
            log.debug(
                "core_banking_envelope_in",
                operation=operation.name,
                envelope=mask_envelope(envelope),
            )
        return envelope, http_headers


@functools.lru_cache(maxsize=4)
def _document(path: str) -> tuple[Any, zeep.Settings]:
    """Parse the WSDL (the expensive part) once per process and path."""
    settings = zeep.Settings(
        strict=True,
        xml_huge_tree=False,
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    loader = _Transport(requests.Session(), (5.0, 5.0))
    return Document(path, loader, settings=settings), settings  # type: ignore[arg-type]


def _session(pool_size: int, ca_bundle: Path | None) -> requests.Session:
    """The shared session factory's: no transport-level retries (tenacity decides, for reads
    only), no cookies, and no proxy or netrc look-up in the environment on every call (which
    cost more CPU than the rest of the HTTP exchange)."""
    return new_session(
        user_agent="wallet-gateway core-banking adapter",
        pool_size=pool_size,
        tls=TlsOptions(ca_bundle=ca_bundle),
    )


class SoapCoreBanking:
    """`adapters.base.CoreBanking` over SOAP 1.1 (document/literal) with zeep."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 2.0,
        timeout: float = 10.0,
        source_system: str = "WALLET-GATEWAY",
        username: str | None = None,
        password: str | None = None,
        password_digest: bool = False,
        read_attempts: int = 3,
        retry_backoff: float = 0.2,
        retry_backoff_max: float = 2.0,
        pool_size: int = 10,
        ca_bundle: Path | None = None,
        wsdl: Path | None = None,
        plugins: Iterable[zeep.Plugin] = (),
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("the core-banking URL must be http:// or https://")
        self.url = url
        self.source_system = facets.reference(source_system, "SourceSystem")
        self._timeout = (connect_timeout, timeout)
        self._session = _session(pool_size, ca_bundle)
        self._wsse = (
            UsernameToken(username, password, use_digest=password_digest)
            if username is not None
            else None
        )
        self._plugins = [_ObservabilityPlugin(), *plugins]
        self._wsdl_path = str(wsdl or contract.wsdl_path())
        self._services: dict[tuple[float, float], tuple[Any, _Transport]] = {}
        self._services_lock = threading.Lock()
        self._service, self._transport = self._bind(self._timeout)
        self._retrying = Retrying(
            stop=stop_after_attempt(read_attempts),
            # Exponential from `retry_backoff`, capped, plus up to one base step of jitter.
            wait=wait_exponential(multiplier=retry_backoff, max=retry_backoff_max)
            + wait_random(0, retry_backoff),
            retry=retry_if_exception_type(CoreBankingUnavailable),
            reraise=True,
            before_sleep=self._log_retry,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **extra: Any) -> SoapCoreBanking:
        password = settings.core_banking_password
        return cls(
            settings.resolved_core_banking_url,
            connect_timeout=settings.core_banking_connect_timeout_seconds,
            timeout=settings.core_banking_timeout_seconds,
            source_system=settings.core_banking_source_system,
            username=settings.core_banking_username,
            password=password.get_secret_value() if password is not None else None,
            password_digest=settings.core_banking_password_digest,
            read_attempts=settings.core_banking_read_attempts,
            retry_backoff=settings.core_banking_retry_backoff_seconds,
            retry_backoff_max=settings.core_banking_retry_backoff_max_seconds,
            pool_size=settings.core_banking_pool_size,
            ca_bundle=settings.core_banking_ca_bundle,
            **extra,
        )

    def close(self) -> None:
        self._session.close()

    # --- plumbing ---------------------------------------------------------------------------

    def _bind(self, timeout: tuple[float, float]) -> tuple[Any, _Transport]:
        """A service proxy with its own timeouts, sharing the parsed WSDL and the session."""
        with self._services_lock:
            if timeout not in self._services:
                document, settings = _document(self._wsdl_path)
                transport = _Transport(self._session, timeout)
                client = zeep.Client(
                    document,
                    wsse=self._wsse,
                    transport=transport,
                    plugins=self._plugins,
                    settings=settings,
                )
                service = client.create_service(
                    f"{{{contract.NAMESPACE}}}CoreBankingSoap11Binding", self.url
                )
                self._services[timeout] = (service, transport)
            return self._services[timeout]

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "core_banking_retry",
            attempt=state.attempt_number,
            core_code=getattr(error, "core_code", None),
            sleep_ms=round((state.next_action.sleep if state.next_action else 0) * 1000),
        )

    def _send(
        self,
        operation: str,
        body: dict[str, Any],
        *,
        posting: bool,
        timeout: tuple[float, float] | None = None,
    ) -> Any:
        """One SOAP exchange: returns the response body or raises a typed CoreBankingError."""
        service, transport = self._bind(timeout) if timeout else (self._service, self._transport)
        message_id = uuid.uuid4().hex
        header = {
            "MessageId": message_id,
            "SourceSystem": self.source_system,
            "RequestedAt": datetime.now(UTC),
        }
        started = time.perf_counter()
        outcome = "ok"
        transport.reset_sent()
        try:
            result = getattr(service, operation)(
                **{k: v for k, v in body.items() if v is not None},
                _soapheaders={"RequestHeader": header},
            )
            echoed = getattr(getattr(result.header, "ResponseHeader", None), "MessageId", None)
            if echoed != message_id:
                raise mapping.ResponseMismatch("ResponseHeader.MessageId does not echo ours")
            return result.body
        except zeep_errors.Fault as exc:
            error = mapping.error_for_fault(
                mapping.parse_fault_detail(exc.detail), faultcode=exc.code, posting=posting
            )
            outcome = _outcome(error)
            raise error from exc
        except CoreBankingError:
            outcome = "error"
            raise
        except Exception as exc:
            if not transport.sent:
                # Nothing left the process: a request zeep could not build is our bug.
                outcome = "error"
                raise CoreBankingError(
                    "The core banking request could not be built",
                    code="core_banking_integration_error",
                    core_code="REQUEST_NOT_BUILT",
                ) from exc
            error = mapping.classify_transport_error(exc, posting=posting)
            outcome = _outcome(error)
            raise error from exc
        finally:
            elapsed = time.perf_counter() - started
            CORE_BANKING_CALLS.labels(operation, outcome).inc()
            CORE_BANKING_LATENCY.labels(operation).observe(elapsed)
            log.info(
                "core_banking_call",
                operation=operation,
                outcome=outcome,
                duration_ms=round(elapsed * 1000, 1),
                message_id=message_id,
            )

    def _read(self, operation: str, body: dict[str, Any], parse: Callable[[Any], T]) -> T:
        def once() -> T:
            response = self._send(operation, body, posting=False)
            try:
                return parse(response)
            except mapping.ResponseMismatch as exc:
                log.warning("core_banking_bad_response", operation=operation, problem=str(exc))
                raise mapping.classify_transport_error(exc, posting=False) from exc

        return self._retrying.copy()(once)

    def _post(self, operation: str, body: dict[str, Any], parse: Callable[[Any], T]) -> T:
        response = self._send(operation, body, posting=True)
        try:
            return parse(response)
        except mapping.ResponseMismatch as exc:
            log.warning("core_banking_bad_response", operation=operation, problem=str(exc))
            raise mapping.classify_transport_error(exc, posting=True) from exc

    # --- reads --------------------------------------------------------------------------------

    def get_account(self, account_number: str) -> CoreAccount:
        body = {"AccountNumber": facets.account_number(account_number)}
        return self._read("GetAccount", body, mapping.account)

    def get_balance(self, account_number: str) -> CoreBalance:
        body = {"AccountNumber": facets.account_number(account_number)}
        return self._read("GetBalance", body, mapping.balance)

    def get_transaction_status(self, external_reference: str) -> TransactionStatus:
        body = {"ExternalReference": facets.reference(external_reference, "ExternalReference")}
        return self._read("GetTransactionStatus", body, mapping.transaction_status)

    def get_statement(
        self,
        *,
        account_number: str,
        from_date: date,
        to_date: date,
        page_token: str | None = None,
        page_size: int = 100,
    ) -> StatementPage:
        start, end = facets.date_range(from_date, to_date)
        body = {
            "AccountNumber": facets.account_number(account_number),
            "FromDate": start,
            "ToDate": end,
            "PageSize": facets.page_size(page_size),
            "PageToken": facets.page_token(page_token),
        }
        return self._read("GetStatement", body, mapping.statement)

    def ping(self, *, timeout: float | None = None) -> None:
        """Reachability probe; one attempt, optionally with a shorter operation timeout."""
        limits = (min(self._timeout[0], timeout), timeout) if timeout else None
        self._send("Ping", {}, posting=False, timeout=limits)

    # --- postings (never retried) -------------------------------------------------------------

    def place_hold(
        self,
        *,
        hold_reference: str,
        account_number: str,
        amount: Money,
        expires_at: datetime | None = None,
        description: str = "",
    ) -> HoldResult:
        body = {
            "HoldReference": facets.reference(hold_reference, "HoldReference"),
            "AccountNumber": facets.account_number(account_number),
            "Amount": facets.positive_amount(amount),
            "ExpiresAt": (
                facets.aware_datetime(expires_at, "ExpiresAt") if expires_at is not None else None
            ),
            "Description": facets.optional_text(description, "Description"),
        }
        return self._post("PlaceHold", body, mapping.hold)

    def release_hold(self, *, hold_reference: str) -> HoldResult:
        body = {"HoldReference": facets.reference(hold_reference, "HoldReference")}
        return self._post("ReleaseHold", body, mapping.hold)

    def post_transfer(
        self,
        *,
        external_reference: str,
        debit_account: str,
        credit_account: str,
        amount: Money,
        description: str = "",
        hold_reference: str | None = None,
    ) -> PostingResult:
        body = {
            "ExternalReference": facets.reference(external_reference, "ExternalReference"),
            "DebitAccount": facets.account_number(debit_account, "DebitAccount"),
            "CreditAccount": facets.account_number(credit_account, "CreditAccount"),
            "Amount": facets.positive_amount(amount),
            "Description": facets.optional_text(description, "Description"),
            "HoldReference": (
                facets.reference(hold_reference, "HoldReference")
                if hold_reference is not None
                else None
            ),
        }
        return self._post("PostTransfer", body, mapping.posting)

    def reverse_transfer(
        self, *, external_reference: str, original_reference: str, reason: str = ""
    ) -> PostingResult:
        body = {
            "ExternalReference": facets.reference(external_reference, "ExternalReference"),
            "OriginalReference": facets.reference(original_reference, "OriginalReference"),
            "Reason": facets.optional_text(reason, "Reason"),
        }
        return self._post("ReverseTransfer", body, mapping.posting)


def _outcome(error: CoreBankingError) -> str:
    """Metric label of a failed call."""
    if isinstance(error, OutcomeUnknown):
        return "unknown"
    if isinstance(error, CoreBankingUnavailable):
        return "unavailable"
    if error.category == "CLIENT" and error.code != "core_banking_integration_error":
        return "rejected"
    return "error"


def core_banking_health_check(core: Any, timeout: float) -> Callable[[], str | None]:
    """A readiness check: None when the core answers Ping, a short reason otherwise."""

    def check() -> str | None:
        try:
            if isinstance(core, SoapCoreBanking):
                core.ping(timeout=timeout)
            else:
                core.ping()
        except CoreBankingUnavailable:
            return "unreachable"
        except CoreBankingError as exc:
            return f"failing: {exc.core_code}"
        return None

    return check
