"""A sandbox of a GSMA Mobile Money API provider (Flask), with injectable failures.

It is written from the specification, not from the gateway's adapter, and imports nothing of
it: the adapter is tested against an independent reading of the API. Used by `make run`
(embedded on loopback), `wallet-gateway simulator gsma-mm` and the end-to-end tests.

API (v1.2 subset): `POST /transactions/type/disbursement` (X-CorrelationID idempotency,
X-Callback-URL, 202 + request state; 201 + the transaction in the `synchronous` mode),
`GET /requeststates/{id}`, `GET /transactions/{ref}`, `GET /responses/{clientCorrelationId}`,
`GET /accounts/{type}/{id}/accountname`, `GET /heartbeat`, `POST /oauth/token`. Callbacks are
`PUT` to the X-Callback-URL once an asynchronous disbursement settles (+ `callback_delay`), with
X-CorrelationID, X-Date, X-Content-Hash and, when configured, the shared X-API-Key.

Admin API under `/sandbox` (loopback only): faults, wallets, transactions, callbacks, reset.
docs/providers/gsma_mm.md lists the fault modes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import requests
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from adapters.providers.gsma_mm_sandbox.ledger import (
    AMOUNT,
    CallbackRecord,
    Disbursement,
    SandboxError,
    SandboxLedger,
    fingerprint,
    seed,
)
from adapters.providers.sandbox_kit import (
    FaultList,
    SandboxControls,
    abort_connection,
    add_fault_routes,
    json_body,
)
from gateway.domain.clock import Clock, SystemClock

log = logging.getLogger("gsma_mm_sandbox")

OPERATIONS = ("disbursement", "request_state", "transaction", "response", "account_name", "token")
MODES = {
    # answered at once, nothing created
    "reject": "answer 400 (or the category's status) with an errorObject",
    "unavailable": "answer 503 serviceUnavailable",
    # the request is carried out, but the answer is lost or late
    "error": "carry the request out, then answer 500 internal (outcome unknown to the caller)",
    "timeout": "carry the request out, answer only after `seconds` (the caller times out)",
    "drop": "carry the request out, then close the connection without an answer",
    # (error, timeout, drop with `process: false`: the request is lost before it is carried out)
    # disbursements: accepted (202), then ...
    "fail": "... fail asynchronously with `category`/`code` (default businessRule/genericError)",
    "succeed_late": "... complete only after `seconds` (default 30)",
    "drop_callback": "... never send the callback (the caller must poll)",
    "duplicate_callback": "... send the callback twice",
    "forged_callback": "... also send a forged callback (wrong key, opposite outcome)",
    # disbursements: carried out at once
    "synchronous": "complete (or fail) at once: 201 with the transaction, or the error object; "
    "no callback",
}
ASYNC_MODES = {"fail", "succeed_late", "drop_callback", "duplicate_callback", "forged_callback"}
DISBURSEMENT_MODES = ASYNC_MODES | {"synchronous"}
TOKEN_TTL = timedelta(hours=1)
_UUID_LENGTH = 36


@dataclass
class FaultRule:
    operation: str
    mode: str
    times: int | None = 1  # how many requests it applies to; None = until removed
    seconds: float = 5.0
    category: str = "businessRule"
    code: str = "genericError"
    msisdn: str | None = None  # only disbursements to this wallet
    process: bool = True  # error/timeout/drop: carry the request out first (or lose it)
    id: str = field(default_factory=lambda: "flt_" + secrets.token_hex(4))

    def __post_init__(self) -> None:
        if self.operation not in (*OPERATIONS, "*"):
            raise ValueError(f"unknown operation {self.operation!r} (one of {OPERATIONS})")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r} (one of {sorted(MODES)})")
        if self.mode in DISBURSEMENT_MODES and self.operation != "disbursement":
            raise ValueError(f"mode {self.mode!r} applies to disbursements only")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        allowed = {"operation", "mode", "times", "seconds", "category", "code", "msisdn", "process"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "operation": self.operation,
            "mode": self.mode,
            "times": self.times,
            "seconds": self.seconds,
            "category": self.category,
            "code": self.code,
            "msisdn": self.msisdn,
            "process": self.process,
        }


Sender = Callable[[str, dict[str, str], bytes], int]


def http_sender(timeout: float = 5.0) -> Sender:
    """Deliver a callback over HTTP; returns the status code."""
    session = requests.Session()
    session.trust_env = False

    def send(url: str, headers: dict[str, str], body: bytes) -> int:
        return session.put(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        ).status_code

    return send


class GsmaMmSandbox(SandboxControls[FaultRule]):
    """The sandbox provider, and its Python test API."""

    rule_type = FaultRule
    server_name = "gsma-mm-sandbox"

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        api_key: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        callback_api_key: str | None = None,
        processing_delay: float = 0.0,
        callback_delay: float = 0.0,
        callback_attempts: int = 3,
        callback_retry_seconds: float = 2.0,
        replay_duplicates: bool = True,
        seed_wallets: bool = True,
        sender: Sender | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.ledger = SandboxLedger(self.clock)
        self.faults: FaultList[FaultRule] = FaultList()
        self.api_key = api_key
        self.client_credentials = (client_id, client_secret) if client_id else None
        self.callback_api_key = callback_api_key
        self.processing_delay = timedelta(seconds=processing_delay)
        self.callback_delay = timedelta(seconds=callback_delay)
        self.callback_attempts = callback_attempts
        self.callback_retry = timedelta(seconds=callback_retry_seconds)
        self.replay_duplicates = replay_duplicates
        self.sender = sender if sender is not None else http_sender()
        self.tokens: dict[str, datetime] = {}
        self.callbacks: list[CallbackRecord] = []
        self.requests: dict[str, int] = {}
        self._lock = threading.Lock()
        self._deliver_lock = threading.Lock()
        self._wake = threading.Event()
        if seed_wallets:
            seed(self.ledger)
        self.app = self._create_app()

    # --- test API ------------------------------------------------------------------------------

    def wallet_balance(self, msisdn: str) -> Decimal:
        wallet = self.ledger.find("msisdn", msisdn)
        if wallet is None:
            raise KeyError(msisdn)
        return wallet.balance

    def disbursement(self, correlation_id: str) -> Disbursement | None:
        self.ledger.due()
        return self.ledger.get(correlation_id)

    def settle_due(self) -> int:
        """Settle disbursements whose time has come and queue their callbacks."""
        settled = self.ledger.due()
        for item in settled:
            self._queue_callbacks(item)
        return len(settled)

    def deliver_callbacks(self, sender: Sender | None = None) -> list[CallbackRecord]:
        """Settle what is due, then send every callback whose time has come; returns them."""
        self.settle_due()
        now = self.clock.now()
        send = sender if sender is not None else self.sender
        delivered = []
        with self._deliver_lock:
            with self._lock:
                due = [
                    cb
                    for cb in self.callbacks
                    if not cb.delivered
                    and cb.attempts < self.callback_attempts
                    and cb.due_at <= now
                ]
            for record in due:
                record.attempts += 1
                try:
                    status: int | str = send(record.url, dict(record.headers), record.body)
                except requests.RequestException as exc:
                    status = type(exc).__name__
                record.statuses.append(status)
                if (isinstance(status, int) and 200 <= status < 300) or record.forged:
                    record.delivered = True  # a forged one is sent once, whatever the answer
                else:
                    record.due_at = now + self.callback_retry * record.attempts
                delivered.append(record)
        return delivered

    def pending_callbacks(self) -> list[CallbackRecord]:
        self.settle_due()
        with self._lock:
            return [cb for cb in self.callbacks if not cb.delivered]

    # --- behaviour -----------------------------------------------------------------------------

    def _stall(self, seconds: float) -> None:
        if seconds > 0:
            self._wake.wait(seconds)

    def _count(self, operation: str) -> None:
        with self._lock:
            self.requests[operation] = self.requests.get(operation, 0) + 1

    def _queue_callbacks(self, item: Disbursement) -> None:
        if not item.callback_url or item.callback_mode == "drop" or item.synchronous:
            return  # (a synchronous answer was the outcome: there is nothing to call back)
        if item.status == "completed":
            document = item.transaction()
        else:
            document = item.error or {"errorCategory": "internal", "errorCode": "genericError"}
        due = self.clock.now() + self.callback_delay
        records = [self._callback(item, document, due)]
        if item.callback_mode == "duplicate":
            records.append(self._callback(item, document, due))
        if item.callback_mode == "forged":
            # The opposite of what happened, without the shared key: a gateway that trusts it
            # would capture a failed payout or release a paid one.
            opposite: dict[str, Any] = (
                {"errorCategory": "businessRule", "errorCode": "genericError"}
                if item.status == "completed"
                else {**item.transaction(), "transactionStatus": "completed",
                      "transactionReference": "MMFORGED"}
            )  # fmt: skip
            records.append(self._callback(item, opposite, due, forged=True))
        with self._lock:
            self.callbacks.extend(records)

    def _callback(
        self, item: Disbursement, document: dict[str, Any], due: datetime, *, forged: bool = False
    ) -> CallbackRecord:
        body = json.dumps(document).encode()
        headers = {
            "Content-Type": "application/json",
            "X-CorrelationID": item.correlation_id,
            "X-Date": self.clock.now().replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "X-Content-Hash": hashlib.sha256(body).hexdigest(),
        }
        if forged:
            headers["X-API-Key"] = "forged-" + secrets.token_hex(8)
        elif self.callback_api_key:
            headers["X-API-Key"] = self.callback_api_key
        assert item.callback_url is not None
        return CallbackRecord(item.correlation_id, item.callback_url, body, headers, due, forged)

    def _authenticate(self) -> None:
        if self.api_key is not None:
            presented = request.headers.get("X-API-Key", "")
            if not hmac.compare_digest(presented.encode(), self.api_key.encode()):
                raise SandboxError("authorisation", "clientAuthorisationError", "bad API key")
        if self.client_credentials is not None:
            header = request.headers.get("Authorization", "")
            token = header.removeprefix("Bearer ").strip()
            with self._lock:
                expires = self.tokens.get(token)
            if not header.startswith("Bearer ") or expires is None or expires <= self.clock.now():
                raise SandboxError("authorisation", "clientAuthorisationError", "bad token")

    @staticmethod
    def _error(error: SandboxError, now: datetime) -> tuple[Response, int]:
        return jsonify(error.to_json(now)), error.status

    def _validate_disbursement(self, body: Any) -> tuple[str, str, dict[str, Any]]:
        correlation = request.headers.get("X-CorrelationID", "").strip()
        try:
            uuid.UUID(correlation)
        except ValueError:
            raise SandboxError(
                "validation", "formatError", "X-CorrelationID must be a UUID"
            ) from None
        if len(correlation) != _UUID_LENGTH:
            raise SandboxError("validation", "formatError", "X-CorrelationID must be a UUID")
        if not isinstance(body, dict):
            raise SandboxError("validation", "formatError", "the body must be a JSON object")
        for name in ("amount", "currency", "creditParty", "debitParty"):
            if name not in body:
                raise SandboxError("validation", "mandatoryValueNotSupplied", name)
        if not isinstance(body["amount"], str) or not AMOUNT.match(body["amount"]):
            raise SandboxError("validation", "formatError", "amount")
        if Decimal(body["amount"]) <= 0:
            raise SandboxError("validation", "negativeValue", "amount")
        for party in ("creditParty", "debitParty"):
            items = body[party]
            if (
                not isinstance(items, list)
                or not items
                or not all(isinstance(i, dict) and i.get("key") and i.get("value") for i in items)
            ):
                raise SandboxError("validation", "formatError", party)
        callback = request.headers.get("X-Callback-URL")
        if callback and urlparse(callback).scheme not in ("http", "https"):
            raise SandboxError("validation", "formatError", "X-Callback-URL")
        return correlation.lower(), str(body["creditParty"][0]["value"]), body

    def handle_disbursement(self, environ: dict[str, Any]) -> tuple[Response, int]:
        now = self.clock.now()
        try:
            self._authenticate()
            correlation, msisdn, body = self._validate_disbursement(request.get_json(silent=True))
        except SandboxError as error:
            return self._error(error, now)
        rule = self.faults.take(
            "disbursement", lambda rule: rule.msisdn is None or rule.msisdn == msisdn
        )
        if rule is not None and rule.mode in ("error", "timeout", "drop") and not rule.process:
            # Lost on the way in: nothing is created, the caller sees the same as when it is
            # (a caller patient enough to outwait a `timeout` learns nothing was done).
            unavailable = self._error(SandboxError("serviceUnavailable", "genericError"), now)
            return self._after_processing(rule, unavailable, environ, now)
        if rule is not None and rule.mode in ("reject", "unavailable"):
            category, code = (
                ("serviceUnavailable", "genericError")
                if rule.mode == "unavailable"
                else (rule.category, rule.code)
            )
            return self._error(SandboxError(category, code, "injected"), now)
        existing = self.ledger.get(correlation)
        if existing is not None:
            if existing.fingerprint != fingerprint(body) or not self.replay_duplicates:
                return self._error(
                    SandboxError("businessRule", "duplicateRequest", "X-CorrelationID was used"),
                    now,
                )
            item = existing
        else:
            delay = self.processing_delay
            forced, mode = None, "normal"
            synchronous = rule is not None and rule.mode == "synchronous"
            if synchronous:
                delay = timedelta(0)  # settled below, before answering
            elif rule is not None and rule.mode in ASYNC_MODES:
                if rule.mode == "fail":
                    forced = {"errorCategory": rule.category, "errorCode": rule.code}
                elif rule.mode == "succeed_late":
                    delay = timedelta(seconds=rule.seconds if rule.seconds else 30)
                else:
                    mode = rule.mode.removesuffix("_callback")
            item = self.ledger.create(
                correlation,
                body,
                callback_url=request.headers.get("X-Callback-URL"),
                delay=delay,
                forced_error=forced,
                callback_mode=mode,
                synchronous=synchronous,
            )
        self.settle_due()
        # A replay gets the same kind of answer as the first request.
        answer = self._outcome(item) if item.synchronous else (jsonify(item.request_state()), 202)
        if rule is not None and rule.mode in ("error", "timeout", "drop"):
            return self._after_processing(rule, answer, environ, now)
        return answer

    @staticmethod
    def _outcome(item: Disbursement) -> tuple[Response, int]:
        """A disbursement carried out while the caller waited (API v1.1/v1.2 synchronous mode):
        201 with the completed transaction, or its error object with the category's status."""
        if item.status == "completed":
            return jsonify(item.transaction()), 201
        error = item.error or {"errorCategory": "internal", "errorCode": "genericError"}
        return jsonify(error), SandboxError.STATUS.get(str(error.get("errorCategory")), 400)

    def _after_processing(
        self,
        rule: FaultRule,
        answer: tuple[Response, int],
        environ: dict[str, Any],
        now: datetime,
    ) -> tuple[Response, int]:
        if rule.mode == "error":
            return self._error(SandboxError("internal", "genericError", "injected"), now)
        if rule.mode == "timeout":
            self._stall(rule.seconds)
            return answer
        return abort_connection(environ), 500

    def _read_fault(self, operation: str) -> tuple[Response, int] | None:
        rule = self.faults.take(operation)
        if rule is None:
            return None
        now = self.clock.now()
        if rule.mode == "timeout":
            self._stall(rule.seconds)
            return None
        if rule.mode == "unavailable":
            return self._error(SandboxError("serviceUnavailable", "genericError"), now)
        if rule.mode == "error":
            return self._error(SandboxError("internal", "genericError"), now)
        if rule.mode == "reject":
            return self._error(SandboxError(rule.category, rule.code, "injected"), now)
        return None

    # --- the Flask app -------------------------------------------------------------------------

    def _create_app(self) -> Flask:
        app = Flask("gsma_mm_sandbox")
        app.config["MAX_CONTENT_LENGTH"] = 1_048_576
        sandbox = self

        def guarded(operation: str) -> tuple[Response, int] | None:
            sandbox._count(operation)
            now = sandbox.clock.now()
            try:
                sandbox._authenticate()
            except SandboxError as error:
                return sandbox._error(error, now)
            sandbox.settle_due()
            return sandbox._read_fault(operation)

        @app.post("/oauth/token")
        def token() -> tuple[Response, int]:
            sandbox._count("token")
            now = sandbox.clock.now()
            rule = sandbox.faults.take("token")
            if rule is not None and rule.mode == "unavailable":
                return sandbox._error(SandboxError("serviceUnavailable", "genericError"), now)
            expected = sandbox.client_credentials
            header = request.headers.get("Authorization", "")
            presented: tuple[str, str] | None = None
            if header.startswith("Basic "):
                with contextlib.suppress(ValueError, UnicodeDecodeError):
                    user, _sep, password = base64.b64decode(header[6:]).decode().partition(":")
                    presented = (user, password)
            if (
                expected is None
                or presented != expected
                or request.form.get("grant_type") != "client_credentials"
            ):
                return jsonify({"error": "invalid_client"}), 401
            value = secrets.token_urlsafe(24)
            with sandbox._lock:
                sandbox.tokens[value] = now + TOKEN_TTL
            return jsonify(
                {
                    "access_token": value,
                    "token_type": "Bearer",
                    "expires_in": int(TOKEN_TTL.total_seconds()),
                }
            ), 200

        @app.post("/transactions/type/disbursement")
        def disbursement() -> tuple[Response, int]:
            sandbox._count("disbursement")
            return sandbox.handle_disbursement(request.environ)

        @app.post("/transactions/type/<kind>")
        def other_type(kind: str) -> tuple[Response, int]:
            return sandbox._error(
                SandboxError("businessRule", "transactionTypeError", kind), sandbox.clock.now()
            )

        @app.get("/requeststates/<server_id>")
        def request_state(server_id: str) -> tuple[Response, int]:
            refused = guarded("request_state")
            if refused is not None:
                return refused
            item = sandbox.ledger.by_server_id(server_id)
            if item is None:
                return sandbox._error(
                    SandboxError("identification", "genericError"), sandbox.clock.now()
                )
            return jsonify(item.request_state()), 200

        @app.get("/transactions/<reference>")
        def transaction(reference: str) -> tuple[Response, int]:
            refused = guarded("transaction")
            if refused is not None:
                return refused
            item = sandbox.ledger.by_reference(reference)
            if item is None:
                return sandbox._error(
                    SandboxError("identification", "genericError"), sandbox.clock.now()
                )
            return jsonify(item.transaction()), 200

        @app.get("/responses/<correlation_id>")
        def response_link(correlation_id: str) -> tuple[Response, int]:
            refused = guarded("response")
            if refused is not None:
                return refused
            item = sandbox.ledger.get(correlation_id)
            if item is None or item.transaction_reference is None:
                return sandbox._error(
                    SandboxError("identification", "genericError"), sandbox.clock.now()
                )
            return jsonify({"link": f"/transactions/{item.transaction_reference}"}), 200

        @app.get("/accounts/<key>/<value>/accountname")
        def account_name(key: str, value: str) -> tuple[Response, int]:
            refused = guarded("account_name")
            if refused is not None:
                return refused
            wallet = sandbox.ledger.find(key, value)
            if wallet is None:
                return sandbox._error(
                    SandboxError("identification", "identifierError"), sandbox.clock.now()
                )
            return jsonify(
                {
                    "name": {
                        "firstName": wallet.first_name,
                        "lastName": wallet.last_name,
                        "fullName": wallet.full_name,
                    }
                }
            ), 200

        @app.get("/heartbeat")
        def heartbeat() -> tuple[Response, int]:
            return jsonify({"serviceStatus": "available"}), 200

        register_admin(app, sandbox)
        return app


# --- admin API ------------------------------------------------------------------------------------


def register_admin(app: Flask, sandbox: GsmaMmSandbox) -> None:
    ledger = sandbox.ledger

    @app.errorhandler(ValueError)
    @app.errorhandler(TypeError)
    def _bad_request(exc: Exception) -> tuple[Response, int]:
        return jsonify({"error": str(exc)}), 400

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        if request.path.startswith("/sandbox"):
            return jsonify({"error": exc.description}), exc.code or 500
        # Everything else answers in the API's own error format.
        category = "identification" if exc.code == 404 else "validation"
        body = SandboxError(category, "genericError", exc.description or "").to_json(
            sandbox.clock.now()
        )
        return jsonify(body), exc.code or 400

    @app.get("/sandbox")
    def info() -> Response:
        return jsonify(
            {
                "requests": dict(sandbox.requests),
                "faults": [rule.to_json() for rule in sandbox.faults.rules()],
                "modes": MODES,
                "wallets": len(ledger.wallets),
                "disbursements": len(ledger.disbursements),
            }
        )

    add_fault_routes(app, sandbox, FaultRule.from_json)

    @app.get("/sandbox/wallets")
    def list_wallets() -> Response:
        with ledger.locked():
            return jsonify({"data": [w.to_json() for w in ledger.wallets.values()]})

    @app.post("/sandbox/wallets")
    def open_wallet() -> tuple[Response, int]:
        data = json_body()
        for required in ("msisdn", "first_name", "last_name"):
            if not data.get(required):
                raise ValueError(f"{required} is required")
        wallet = ledger.open_wallet(
            str(data["msisdn"]),
            str(data["first_name"]),
            str(data["last_name"]),
            currency=str(data.get("currency", "KES")),
            balance=str(Decimal(str(data.get("balance", "0")))),
            status=str(data.get("status", "active")),
            max_balance=str(data["max_balance"]) if data.get("max_balance") else None,
        )
        return jsonify(wallet.to_json()), 201

    @app.get("/sandbox/wallets/<msisdn>")
    def show_wallet(msisdn: str) -> tuple[Response, int]:
        wallet = ledger.find("msisdn", msisdn)
        if wallet is None:
            return jsonify({"error": "no such wallet"}), 404
        return jsonify(wallet.to_json()), 200

    @app.get("/sandbox/transactions")
    def list_transactions() -> Response:
        ledger.due()
        with ledger.locked():
            items = list(ledger.disbursements.values())
        return jsonify(
            {
                "data": [
                    {
                        "correlation_id": item.correlation_id,
                        "server_correlation_id": item.server_correlation_id,
                        "status": item.status,
                        "transaction_reference": item.transaction_reference,
                        "amount": item.body["amount"],
                        "currency": item.currency,
                        "callback_mode": item.callback_mode,
                    }
                    for item in items
                ]
            }
        )

    @app.get("/sandbox/callbacks")
    def list_callbacks() -> Response:
        with sandbox._lock:
            return jsonify({"data": [cb.to_json() for cb in sandbox.callbacks]})

    @app.post("/sandbox/callbacks/deliver")
    def deliver() -> Response:
        return jsonify({"delivered": [cb.to_json() for cb in sandbox.deliver_callbacks()]})

    @app.post("/sandbox/reset")
    def reset() -> Response:
        sandbox.reset_faults()
        ledger.reset()
        seed(ledger)
        with sandbox._lock:
            sandbox.callbacks.clear()
            sandbox.requests.clear()
        return jsonify({"wallets": len(ledger.wallets)})
