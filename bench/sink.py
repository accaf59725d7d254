"""A webhook receiver for the dispatch scenario (an ASGI app: `uvicorn bench.sink:app`).

It answers 204 at once and records, per delivery, when it arrived and when its event was
created (the event's `created_at` in the body), so the benchmark can report delivery
throughput and event-to-delivery latency. `GET /stats` returns them; `DELETE /stats` clears.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_received: list[tuple[float, float | None]] = []  # (arrived, event created), epoch seconds
_ids: set[str] = set()
_duplicates = 0


def _created(body: bytes) -> float | None:
    try:
        created = json.loads(body).get("created_at")
        return datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError, TypeError):
        return None


async def _respond(send: Send, status: int, body: bytes = b"") -> None:
    headers = [(b"content-type", b"application/json")] if body else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    global _duplicates
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["path"] == "/stats":
        if scope["method"] == "DELETE":
            _received.clear()
            _ids.clear()
            _duplicates = 0
            await _respond(send, 204)
            return
        stats = {"received": _received, "distinct": len(_ids), "duplicates": _duplicates}
        await _respond(send, 200, json.dumps(stats).encode())
        return
    headers = dict(scope["headers"])
    webhook_id = headers.get(b"webhook-id", b"").decode()
    if webhook_id in _ids:
        _duplicates += 1
    _ids.add(webhook_id)
    _received.append((time.time(), _created(b"".join(chunks))))
    await _respond(send, 204)
