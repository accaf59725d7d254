"""A stand-in for the bank's SMS hub: what the HTTP notifier talks to in demos and compose.

`POST /messages` `{"to", "text", "reference", "sender"?}` (bearer token when configured,
`Idempotency-Key` honoured) keeps the message; `GET /messages?to=&limit=` lists them newest
first. It shares no code with `sms_http.py`, so it also checks that adapter's wire format.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request


class SmsHubSimulator:
    def __init__(self, token: str | None = None, keep: int = 10_000) -> None:
        self.token = token
        self.keep = keep
        self.messages: list[dict[str, Any]] = []
        self._by_key: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.app = self._create_app()

    def _authorized(self) -> bool:
        if self.token is None:
            return True
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return hmac.compare_digest(presented.encode(), self.token.encode())

    def _create_app(self) -> Flask:
        app = Flask("sms-hub-simulator")

        @app.post("/messages")
        def send() -> tuple[Response, int]:
            if not self._authorized():
                return jsonify({"error": "unauthorized"}), 401
            body = request.get_json(silent=True) or {}
            if not isinstance(body.get("to"), str) or not isinstance(body.get("text"), str):
                return jsonify({"error": "to and text are required"}), 400
            key = request.headers.get("Idempotency-Key")
            with self._lock:
                if key and key in self._by_key:
                    return jsonify(self._by_key[key]), 200
                message = {
                    "id": "sms_" + secrets.token_hex(8),
                    "to": body["to"],
                    "text": body["text"],
                    "reference": body.get("reference"),
                    "sender": body.get("sender"),
                    "received_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                }
                self.messages.append(message)
                del self.messages[: -self.keep]
                if key:
                    self._by_key[key] = message
            return jsonify(message), 202

        @app.get("/messages")
        def listing() -> Response:
            to = request.args.get("to")
            limit = min(int(request.args.get("limit", 20)), 500)
            with self._lock:
                found = [m for m in reversed(self.messages) if to is None or m["to"] == to]
            return jsonify({"data": found[:limit]})

        @app.get("/health")
        def health() -> Response:
            return jsonify({"status": "ok"})

        return app
