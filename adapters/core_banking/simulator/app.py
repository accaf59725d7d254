"""The core-banking simulator: a Flask app speaking the contract's SOAP, plus an admin API.

`CoreBankingSimulator` is also the Python test API: inject faults, open and credit accounts,
inspect postings, holds and request counts. `serve()` runs it on a threaded werkzeug server in
a background thread (embedded in `serve`, per test session) and `wallet-gateway simulator
core-banking` runs it standalone. See docs/core-banking-simulator.md.

Endpoints:
  GET  /core-banking?wsdl                 the WSDL, its address pointing at this server
  GET  /core-banking?xsd=core-banking.xsd the schema the WSDL imports
  POST /core-banking                      SOAP 1.1 (every request validated against the XSD)
  /simulator/...                          admin JSON API (faults, accounts, postings, holds)
  GET  /simulator/camt054, /simulator/camt053  ISO 20022 messages of booked entries (camt.py)
"""

from __future__ import annotations

import contextlib
import re
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Flask, Response, jsonify, request
from lxml import etree
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from adapters.core_banking.contract import (
    NAMESPACE,
    SOAP_ACTION_PREFIX,
    XSD_NAME,
    wsdl_path,
    xsd_path,
)
from adapters.core_banking.simulator import camt, envelope, seed
from adapters.core_banking.simulator.envelope import CB, SoapRequest, SoapRequestError
from adapters.core_banking.simulator.faults import FaultInjector, FaultRule, Plan
from adapters.core_banking.simulator.ledger import (
    Balance,
    Hold,
    Ledger,
    LedgerFault,
    Posting,
    to_decimal,
)
from gateway.domain.clock import Clock, SystemClock

SOAP_PATH = "/core-banking"
ACCOUNT_NUMBER = re.compile(r"[A-Z0-9]{5,34}")
MAX_REQUEST_BYTES = 1_048_576
_HTML_ERROR = (
    "<html><head><title>{status} Bad Gateway</title></head><body><center><h1>{status} Bad "
    "Gateway</h1></center><hr><center>nginx</center></body></html>\n"
)


class CoreBankingSimulator:
    """A faithful stand-in for the bank's core, with switchable faults."""

    def __init__(
        self,
        db: str = ":memory:",
        *,
        clock: Clock | None = None,
        username: str | None = None,
        password: str | None = None,
        validate_responses: bool = False,
        seed_demo_accounts: bool = True,
    ) -> None:
        self.clock = clock or SystemClock()
        self.ledger = Ledger(db, clock=self.clock)
        self.faults = FaultInjector()
        self.username, self.password = username, password
        self.validate_responses = validate_responses
        self.requests: Counter[str] = Counter()
        self.validation_failures: list[str] = []
        self._counter_lock = threading.Lock()
        self._wake = threading.Event()
        self.server: SimulatorServer | None = None  # the last one started by serve()
        self.pusher: camt.CamtPusher | None = None  # camt messages to a gateway, if started
        if seed_demo_accounts:
            seed.seed(self.ledger)
        self.app = self._create_app()

    # --- test API -------------------------------------------------------------------------------

    def inject(self, operation: str, mode: str, **options: Any) -> FaultRule:
        """Add a fault rule, e.g. `inject("PostTransfer", "drop")` (see faults.py for modes)."""
        return self.faults.add(FaultRule(operation=operation, mode=mode, **options))

    @contextlib.contextmanager
    def fault(self, operation: str, mode: str, **options: Any) -> Iterator[FaultRule]:
        """A fault for the duration of a `with` block."""
        rule = self.inject(operation, mode, **options)
        try:
            yield rule
        finally:
            self.faults.remove(rule.id)

    def reset_faults(self) -> None:
        """Remove every rule and wake requests stalled by `timeout`/`latency` rules."""
        self.faults.clear()
        self._wake.set()
        self._wake = threading.Event()

    def request_count(self, operation: str) -> int:
        with self._counter_lock:
            return self.requests[operation]

    def reset_counters(self) -> None:
        with self._counter_lock:
            self.requests.clear()
            self.validation_failures.clear()

    def open_account(
        self,
        *,
        currency: str = "CNY",
        balance: str = "1000.00",
        name: str = "Test Customer",
        number: str | None = None,
        **options: Any,
    ) -> str:
        """Open an account with a fresh number (tests isolate themselves this way)."""
        number = number or "7" + "".join(secrets.choice("0123456789") for _ in range(15))
        if options.get("daily_debit_limit") is not None:
            options["daily_debit_limit"] = Decimal(str(options["daily_debit_limit"]))
        self.ledger.open_account(
            number, name=name, currency=currency, balance=Decimal(balance), **options
        )
        return number

    def balance(self, account: str) -> Balance:
        return self.ledger.get_balance(account)

    def postings(
        self, reference: str | None = None, *, account: str | None = None
    ) -> list[dict[str, Any]]:
        return self.ledger.postings(reference=reference, account=account)

    def posting_count(self, reference: str) -> int:
        return len(self.ledger.postings(reference=reference))

    # --- ISO 20022 (camt.py) -----------------------------------------------------------------

    def camt_entries(
        self, *, after: int = 0, accounts: list[str] | None = None, day: date | None = None
    ) -> list[camt.CamtEntry]:
        """Booked entries as camt reports them (tests edit them to plant breaks)."""
        return camt.ledger_entries(self.ledger, after=after, accounts=accounts, day=day)

    def camt054(
        self, *, after: int = 0, accounts: list[str] | None = None, version: str = "001.08"
    ) -> tuple[bytes, int] | None:
        """A camt.054 of the entries booked after entry id `after`, and its last entry id."""
        return camt.notification_for(self.ledger, after=after, accounts=accounts, version=version)

    def camt053(self, account: str, day: date, *, version: str = "001.08") -> bytes:
        """The end-of-day statement of `account` for `day`."""
        return camt.statement_for(self.ledger, account, day, version=version)

    def start_camt_push(
        self,
        gateway_url: str,
        *,
        client_id: str,
        client_secret: str,
        interval: float = 10.0,
        version: str = "001.08",
    ) -> camt.CamtPusher:
        """Push new entries (camt.054) and finished days' statements (camt.053) to a gateway."""
        if self.pusher is not None:
            self.pusher.stop()
        self.pusher = camt.CamtPusher(
            self.ledger,
            gateway_url=gateway_url,
            client_id=client_id,
            client_secret=client_secret,
            version=version,
            interval=interval,
            clock=self.clock,
        )
        self.pusher.start()
        return self.pusher

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> SimulatorServer:
        """Serve on a threaded HTTP server in a daemon thread (port 0 picks a free port)."""
        server = SimulatorServer(self, host, port)
        server.start()
        self.server = server
        return server

    # --- SOAP -------------------------------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._wake.wait(seconds)

    def _count(self, operation: str) -> None:
        with self._counter_lock:
            self.requests[operation] += 1

    def _soap_response(self, body: bytes, status: int = 200) -> Response:
        return Response(body, status=status, content_type="text/xml; charset=utf-8")

    def _fault_response(
        self,
        code: str,
        category: str,
        message: str,
        *,
        retryable: bool = False,
        field: str | None = None,
        message_id: str | None = None,
        faultcode: str | None = None,
    ) -> Response:
        body = envelope.fault(
            code,
            category,
            message,
            retryable=retryable,
            field=field,
            message_id=message_id,
            now=self.clock.now(),
            faultcode=faultcode,
            validate=self.validate_responses,
        )
        return self._soap_response(body, 500)

    def handle_soap(
        self, data: bytes, soap_action: str | None, environ: dict[str, Any]
    ) -> Response:
        try:
            soap = envelope.parse_request(data)
        except SoapRequestError as exc:
            with self._counter_lock:
                self.requests["(invalid)"] += 1
                self.validation_failures.append(f"{exc.code}: {exc.message}")
            return self._fault_response(
                exc.code,
                "CLIENT",
                exc.message,
                field=exc.field,
                message_id=envelope.message_id_of(data),
                faultcode=exc.faultcode,
            )
        self._count(soap.operation)
        action = (soap_action or "").strip().strip('"')
        if action and action != SOAP_ACTION_PREFIX + soap.operation:
            return self._fault_response(
                "SOAP_ACTION_MISMATCH",
                "CLIENT",
                "SOAPAction does not match the operation",
                message_id=soap.message_id,
            )
        if self.username is not None and not envelope.check_username_token(
            soap.security, self.username, self.password or ""
        ):
            return self._fault_response(
                "AUTHENTICATION_FAILED",
                "CLIENT",
                "WS-Security UsernameToken missing or wrong",
                message_id=soap.message_id,
            )

        plan = self.faults.plan(soap.operation, self.clock.now())
        self._sleep(plan.latency)
        rule = plan.terminal
        if rule is not None:
            if rule.mode == "html_502":
                html = _HTML_ERROR.format(status=rule.status)
                return Response(html, status=rule.status, content_type="text/html")
            if rule.mode in ("fault", "unavailable"):
                code, category, retryable, message = rule.fault_fields()
                return self._fault_response(
                    code, category, message, retryable=retryable, message_id=soap.message_id
                )
            if rule.mode in ("drop", "timeout") and not rule.process:
                self._sleep(rule.seconds)
                return _abort_connection(environ)

        answer = self._dispatch(soap, plan)

        if rule is not None:
            if rule.mode == "timeout":
                self._sleep(rule.seconds)  # the client has given up by now
            elif rule.mode == "drop":
                return _abort_connection(environ)
            elif rule.mode == "garbage":
                text = answer.get_data()
                return Response(text[: max(1, len(text) // 2)], status=200, content_type="text/xml")
        return answer

    def _dispatch(self, soap: SoapRequest, plan: Plan) -> Response:
        handler: Callable[[SoapRequest, Plan], list[etree._Element]] = getattr(
            self, f"_op_{soap.operation}"
        )
        try:
            children = handler(soap, plan)
        except LedgerFault as fault:
            return self._fault_response(
                fault.code,
                fault.category,
                fault.message,
                retryable=fault.retryable,
                field=fault.field,
                message_id=soap.message_id,
            )
        body = envelope.response(
            soap.operation,
            children,
            message_id=soap.message_id,
            now=self.clock.now(),
            extensions=plan.extensions,
            validate=self.validate_responses,
        )
        return self._soap_response(body)

    # Operation handlers: validated request in, response children out.

    def _op_Ping(self, soap: SoapRequest, plan: Plan) -> list[etree._Element]:  # noqa: N802
        return [CB.Status("UP"), CB.ServerTime(envelope.stamp(self.clock.now()))]

    def _op_GetAccount(self, soap: SoapRequest, plan: Plan) -> list[etree._Element]:  # noqa: N802
        account = self.ledger.get_account(soap.required("AccountNumber"))
        node = CB.Account(
            CB.AccountNumber(account["number"]),
            CB.Name(account["name"]),
            CB.Currency(account["currency"]),
            CB.Status(account["status"]),
            CB.DebitAllowed("true" if account["debit_allowed"] else "false"),
            CB.CreditAllowed("true" if account["credit_allowed"] else "false"),
        )
        if account["mobile"]:
            node.append(CB.RegisteredMobile(account["mobile"]))
        return [node]

    def _op_GetBalance(self, soap: SoapRequest, plan: Plan) -> list[etree._Element]:  # noqa: N802
        balance = self.ledger.get_balance(soap.required("AccountNumber"))
        return [
            CB.AccountNumber(balance.account),
            envelope.amount("Available", balance.available, balance.currency),
            envelope.amount("Ledger", balance.ledger, balance.currency),
            CB.AsOf(envelope.stamp(balance.as_of)),
        ]

    @staticmethod
    def _hold(hold: Hold, replayed: bool) -> list[etree._Element]:
        return [
            CB.Hold(
                CB.HoldReference(hold.reference),
                CB.AccountNumber(hold.account),
                envelope.amount("Amount", hold.amount, hold.currency),
                CB.Status(hold.status),
                CB.ExpiresAt(envelope.stamp(hold.expires_at)),
            ),
            CB.Replayed("true" if replayed else "false"),
        ]

    @staticmethod
    def _posting(posting: Posting, replayed: bool) -> list[etree._Element]:
        status = "PENDING" if posting.status == "PENDING" else "BOOKED"
        return [
            CB.Posting(
                CB.ExternalReference(posting.external_reference),
                CB.CoreReference(posting.core_reference),
                CB.Status(status),
                CB.BookingDate(posting.booking_date.isoformat()),
                CB.ValueDate(posting.value_date.isoformat()),
            ),
            CB.Replayed("true" if replayed else "false"),
        ]

    def _op_PlaceHold(self, soap: SoapRequest, plan: Plan) -> list[etree._Element]:  # noqa: N802
        value, currency = soap.amount()
        hold, replayed = self.ledger.place_hold(
            soap.required("HoldReference"),
            soap.required("AccountNumber"),
            value,
            currency,
            expires_at=soap.datetime("ExpiresAt"),
            description=soap.text("Description"),
            dedup=not plan.no_dedup,
        )
        return self._hold(hold, replayed)

    def _op_ReleaseHold(self, soap: SoapRequest, plan: Plan) -> list[etree._Element]:  # noqa: N802
        hold, replayed = self.ledger.release_hold(soap.required("HoldReference"))
        return self._hold(hold, replayed)

    def _op_PostTransfer(self, soap: SoapRequest, plan: Plan) -> list[etree._Element]:  # noqa: N802
        value, currency = soap.amount()
        posting, replayed = self.ledger.post_transfer(
            soap.required("ExternalReference"),
            soap.required("DebitAccount"),
            soap.required("CreditAccount"),
            value,
            currency,
            description=soap.text("Description"),
            hold_reference=soap.text("HoldReference"),
            dedup=not plan.no_dedup,
            pending=plan.pending,
        )
        return self._posting(posting, replayed)

    def _op_ReverseTransfer(self, soap: SoapRequest, plan: Plan) -> list[etree._Element]:  # noqa: N802
        posting, replayed = self.ledger.reverse_transfer(
            soap.required("ExternalReference"),
            soap.required("OriginalReference"),
            reason=soap.text("Reason"),
            dedup=not plan.no_dedup,
        )
        return self._posting(posting, replayed)

    def _op_GetTransactionStatus(self, soap: SoapRequest, plan: Plan) -> list[etree._Element]:  # noqa: N802
        status = self.ledger.transaction_status(soap.required("ExternalReference"))
        children = [CB.ExternalReference(status.external_reference), CB.Status(status.status)]
        if status.core_reference:
            children.append(CB.CoreReference(status.core_reference))
        if status.amount is not None and status.currency:
            children.append(envelope.amount("Amount", status.amount, status.currency))
        if status.booked_at is not None:
            children.append(CB.BookedAt(envelope.stamp(status.booked_at)))
        if status.rejection_code:
            children.append(CB.RejectionCode(status.rejection_code))
        return children

    def _op_GetStatement(self, soap: SoapRequest, plan: Plan) -> list[etree._Element]:  # noqa: N802
        size = soap.text("PageSize")
        entries, token = self.ledger.statement(
            soap.required("AccountNumber"),
            soap.date("FromDate"),
            soap.date("ToDate"),
            page_size=int(size) if size else 100,
            page_token=soap.text("PageToken"),
        )
        nodes = []
        for entry in entries:
            node = CB.Ntry(
                CB.NtryRef(entry.entry_reference),
                envelope.amount("Amt", entry.amount, entry.currency),
                CB.CdtDbtInd(entry.credit_debit),
                CB.Sts("BOOK"),
                CB.BookgDt(entry.booking_date.isoformat()),
                CB.ValDt(entry.value_date.isoformat()),
                CB.AcctSvcrRef(entry.core_reference),
            )
            if entry.external_reference:
                node.append(CB.EndToEndId(entry.external_reference))
            if entry.description:
                node.append(CB.AddtlNtryInf(entry.description[:140]))
            nodes.append(node)
        children = [CB.AccountNumber(soap.required("AccountNumber")), CB.Entries(*nodes)]
        if token:
            children.append(CB.NextPageToken(token))
        return children

    # --- the Flask app ----------------------------------------------------------------------------

    def _create_app(self) -> Flask:
        app = Flask("core_banking_simulator")
        app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
        simulator = self

        @app.get(SOAP_PATH)
        def contract_documents() -> Response:
            if "wsdl" in request.args:
                return Response(
                    _wsdl_for(request.host_url.rstrip("/") + SOAP_PATH),
                    content_type="text/xml; charset=utf-8",
                )
            if request.args.get("xsd") == XSD_NAME:
                return Response(xsd_path().read_bytes(), content_type="text/xml; charset=utf-8")
            return Response("use ?wsdl or POST a SOAP envelope\n", 400, content_type="text/plain")

        @app.post(SOAP_PATH)
        def soap_endpoint() -> Response:
            return simulator.handle_soap(
                request.get_data(), request.headers.get("SOAPAction"), request.environ
            )

        register_admin(app, simulator)
        return app


def _wsdl_for(address: str) -> bytes:
    """The contract's WSDL with this server's address and a fetchable schema location."""
    doc = etree.parse(str(wsdl_path()))
    soap_ns = "http://schemas.xmlsoap.org/wsdl/soap/"
    for node in doc.iter(f"{{{soap_ns}}}address"):
        node.set("location", address)
    for node in doc.iter("{http://www.w3.org/2001/XMLSchema}import"):
        if node.get("namespace") == NAMESPACE:
            node.set("schemaLocation", f"{address}?xsd={XSD_NAME}")
    return etree.tostring(doc, xml_declaration=True, encoding="utf-8")


def _abort_connection(environ: dict[str, Any]) -> Response:
    """Close the client's connection without an answer (the response is lost in transit)."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return Response(b"", status=500)

    def truncated() -> Iterator[bytes]:  # other WSGI servers: die mid-body
        yield b"<?xml version='1.0'?><soap-env:Envelope"
        raise ConnectionAbortedError("simulated lost response")

    return Response(truncated(), status=200, headers={"Content-Length": "4096"})


# --- admin API ------------------------------------------------------------------------------------


def _amount_json(units: int | None) -> str | None:
    return None if units is None else f"{to_decimal(units):f}"


def _account_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "number": row["number"],
        "name": row["name"],
        "currency": row["currency"],
        "status": row["status"],
        "kind": row["kind"],
        "debit_allowed": bool(row["debit_allowed"]),
        "credit_allowed": bool(row["credit_allowed"]),
        "registered_mobile": row["mobile"],
        "ledger_balance": _amount_json(row["ledger_units"]),
        "available_balance": _amount_json(row.get("available_units")),
        "daily_debit_limit": _amount_json(row["daily_debit_limit_units"]),
    }


def _posting_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "external_reference": row["external_reference"],
        "core_reference": row["core_reference"],
        "kind": row["kind"],
        "status": row["status"],
        "debit_account": row["debit_account"],
        "credit_account": row["credit_account"],
        "amount": _amount_json(row["amount_units"]),
        "currency": row["currency"],
        "description": row["description"],
        "hold_reference": row["hold_reference"],
        "original_reference": row["original_reference"],
        "booking_date": row["booking_date"],
        "booked_at": row["booked_at"],
    }


def _hold_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "reference": row["reference"],
        "core_reference": row["core_reference"],
        "account": row["account"],
        "amount": _amount_json(row["amount_units"]),
        "currency": row["currency"],
        "status": row["status"],
        "expires_at": row["expires_at"],
        "captured_amount": _amount_json(row["captured_units"]),
    }


class _BadRequest(Exception):
    pass


def _decimal(value: Any, name: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise _BadRequest(f"{name} must be a decimal string such as '100.00'") from None
    if not result.is_finite():
        raise _BadRequest(f"{name} must be finite")
    return result


def register_admin(app: Flask, simulator: CoreBankingSimulator) -> None:
    """JSON endpoints for tests, demos and operators of the simulator (loopback only)."""
    ledger = simulator.ledger

    @app.errorhandler(_BadRequest)
    @app.errorhandler(ValueError)
    def _bad_request(exc: Exception) -> tuple[Response, int]:
        return jsonify({"error": str(exc)}), 400

    @app.errorhandler(LedgerFault)
    def _ledger_fault(exc: LedgerFault) -> tuple[Response, int]:
        return jsonify({"error": exc.message, "code": exc.code}), 404 if exc.code.endswith(
            "NOT_FOUND"
        ) else 422

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        if request.path.startswith("/simulator"):
            return jsonify({"error": exc.description}), exc.code or 500
        return exc.get_response()

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise _BadRequest("expected a JSON object")
        return data

    @app.get("/simulator")
    def info() -> Response:
        return jsonify(
            {
                "soap_endpoint": request.host_url.rstrip("/") + SOAP_PATH,
                "wsdl": request.host_url.rstrip("/") + SOAP_PATH + "?wsdl",
                "requests": dict(simulator.requests),
                "faults": [rule.to_json() for rule in simulator.faults.rules()],
            }
        )

    @app.get("/simulator/faults")
    def list_faults() -> Response:
        return jsonify({"data": [rule.to_json() for rule in simulator.faults.rules()]})

    @app.post("/simulator/faults")
    def add_fault() -> tuple[Response, int]:
        rule = simulator.faults.add(FaultRule.from_json(body()))
        return jsonify(rule.to_json()), 201

    @app.delete("/simulator/faults")
    def clear_faults() -> tuple[str, int]:
        simulator.reset_faults()
        return "", 204

    @app.delete("/simulator/faults/<rule_id>")
    def delete_fault(rule_id: str) -> tuple[Response | str, int]:
        if not simulator.faults.remove(rule_id):
            return jsonify({"error": "no such fault rule"}), 404
        return "", 204

    @app.get("/simulator/requests")
    def request_counts() -> Response:
        return jsonify(
            {
                "counts": dict(simulator.requests),
                "validation_failures": list(simulator.validation_failures),
            }
        )

    @app.delete("/simulator/requests")
    def reset_request_counts() -> tuple[str, int]:
        simulator.reset_counters()
        return "", 204

    @app.get("/simulator/accounts")
    def list_accounts() -> Response:
        rows = ledger.accounts(request.args.get("kind"))
        return jsonify({"data": [_account_json(row) for row in rows]})

    @app.post("/simulator/accounts")
    def open_account() -> tuple[Response, int]:
        data = body()
        for required in ("currency", "name"):
            if not data.get(required):
                raise _BadRequest(f"{required} is required")
        number = str(data.get("number") or "")
        if number and not ACCOUNT_NUMBER.fullmatch(number):
            raise _BadRequest("number must be 5 to 34 upper-case letters and digits")
        number = simulator.open_account(
            number=number or None,
            currency=str(data["currency"]),
            name=str(data["name"]),
            balance=str(_decimal(data.get("balance", "0"), "balance")),
            status=str(data.get("status", "ACTIVE")),
            debit_allowed=bool(data.get("debit_allowed", True)),
            credit_allowed=bool(data.get("credit_allowed", True)),
            mobile=data.get("registered_mobile"),
            kind=str(data.get("kind", "customer")),
            daily_debit_limit=(
                _decimal(data["daily_debit_limit"], "daily_debit_limit")
                if data.get("daily_debit_limit") is not None
                else None
            ),
        )
        return jsonify(_account_json(ledger.account_view(number))), 201

    @app.get("/simulator/accounts/<number>")
    def show_account(number: str) -> Response:
        return jsonify(
            {
                **_account_json(ledger.account_view(number)),
                "holds": [_hold_json(row) for row in ledger.holds(account=number)],
            }
        )

    @app.patch("/simulator/accounts/<number>")
    def update_account(number: str) -> Response:
        data = body()
        changes = {
            ("mobile" if key == "registered_mobile" else key): value for key, value in data.items()
        }
        if changes.get("daily_debit_limit") is not None:
            changes["daily_debit_limit"] = _decimal(changes["daily_debit_limit"], "limit")
        ledger.update_account(number, **changes)
        return jsonify(_account_json(ledger.account_view(number)))

    @app.post("/simulator/accounts/<number>/credit")
    def credit_account(number: str) -> tuple[Response, int]:
        data = body()
        amount = _decimal(data.get("amount"), "amount")
        if amount <= 0:
            raise _BadRequest("amount must be positive")
        posting = ledger.credit(
            number, amount, description=str(data.get("description") or "Cash deposit")
        )
        return jsonify(
            {
                "core_reference": posting.core_reference,
                "account": _account_json(ledger.account_view(number)),
            }
        ), 201

    @app.get("/simulator/postings")
    def list_postings() -> Response:
        rows = ledger.postings(
            reference=request.args.get("reference"), account=request.args.get("account")
        )
        return jsonify({"count": len(rows), "data": [_posting_json(row) for row in rows]})

    @app.post("/simulator/postings/<core_reference>/book")
    def book_posting(core_reference: str) -> Response:
        posting = ledger.book_pending(core_reference)
        return jsonify({"core_reference": posting.core_reference, "status": posting.status})

    @app.post("/simulator/postings/<core_reference>/reject")
    def reject_posting(core_reference: str) -> tuple[str, int]:
        data = request.get_json(silent=True) or {}
        ledger.reject_pending(core_reference, str(data.get("code") or "INSUFFICIENT_FUNDS"))
        return "", 204

    @app.get("/simulator/holds")
    def list_holds() -> Response:
        rows = ledger.holds(
            reference=request.args.get("reference"), account=request.args.get("account")
        )
        return jsonify({"count": len(rows), "data": [_hold_json(row) for row in rows]})

    @app.get("/simulator/camt054")
    def camt054() -> Response:
        accounts = request.args.getlist("account") or camt.reconciled_accounts(ledger)
        built = simulator.camt054(
            after=int(request.args.get("since", "0") or 0),
            accounts=accounts,
            version=request.args.get("version", "001.08"),
        )
        if built is None:
            return Response(status=204)
        data, last = built
        return Response(
            data,
            content_type="application/xml",
            headers={"X-Camt-Last-Entry": str(last)},
        )

    @app.get("/simulator/camt053")
    def camt053() -> Response:
        account = request.args.get("account")
        if not account:
            raise _BadRequest("account is required")
        try:
            day = date.fromisoformat(request.args.get("date", ""))
        except ValueError:
            raise _BadRequest("date must be YYYY-MM-DD") from None
        version = request.args.get("version", "001.08")
        ledger.get_account(account)  # 404 for an unknown account
        return Response(
            camt.statement_parts(ledger, account, day, version=version),
            content_type="application/xml",
        )

    @app.post("/simulator/camt/push")
    def camt_push() -> tuple[Response, int]:
        pusher = simulator.pusher
        if pusher is None:
            return jsonify({"error": "no gateway to push to (see docs)"}), 409
        data = request.get_json(silent=True) or {}
        try:
            pushed = pusher.push_notifications()
            statements = []
            if data.get("statement_date"):
                day = date.fromisoformat(str(data["statement_date"]))
                statements = pusher.push_statements(day)
        except (camt.PushFailed, ValueError) as exc:
            return jsonify({"error": str(exc)}), 502
        return jsonify({"entries_pushed": pushed, "statements": statements}), 200

    @app.post("/simulator/reset")
    def reset_ledger() -> Response:
        simulator.reset_faults()
        simulator.reset_counters()
        ledger.reset()
        return jsonify({"seeded": seed.seed(ledger)})


# --- serving --------------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's handler without the per-request access line."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def log(self, type: str, message: str, *args: Any) -> None:
        if type == "error" and "simulated" not in (message % args if args else message):
            super().log(type, message, *args)


class SimulatorServer:
    """A threaded HTTP server for the simulator, running in a daemon thread."""

    def __init__(self, simulator: CoreBankingSimulator, host: str, port: int) -> None:
        self.simulator = simulator
        # Bind ourselves: werkzeug exits the process when a port is taken; we raise OSError.
        listener = socket.create_server((host, port), backlog=128)
        try:
            self._server: BaseWSGIServer = make_server(
                host,
                port,
                simulator.app,
                threaded=True,
                request_handler=_QuietHandler,
                fd=listener.fileno(),
            )
        finally:
            listener.close()  # werkzeug holds its own duplicate of the descriptor
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="core-banking-simulator", daemon=True
        )

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.port)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def soap_url(self) -> str:
        return self.base_url + SOAP_PATH

    def start(self) -> None:
        self._thread.start()

    def wait(self) -> None:
        """Block until the server stops (the standalone command; Ctrl-C interrupts)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def shutdown(self) -> None:
        self.simulator.reset_faults()  # wakes stalled requests
        if self.simulator.pusher is not None:
            self.simulator.pusher.stop()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
