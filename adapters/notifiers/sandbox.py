"""A sandbox notifier for development: messages are kept, not sent.

Messages are appended to a JSON-lines file (shared by every process of the gateway) so a
developer can read the OTP through the operator endpoint `GET /admin/v1/sandbox/messages`.
Logs only ever say "OTP sent to ****1234".
"""

from __future__ import annotations

import json
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.observability.logging import get_logger, mask

log = get_logger("adapters.notifiers.sandbox")


class SandboxNotifier:
    def __init__(self, outbox: Path, keep: int = 1000) -> None:
        self.outbox = outbox
        self.keep = keep
        self._lock = threading.Lock()
        outbox.parent.mkdir(parents=True, exist_ok=True)

    def send_sms(self, *, to: str, text: str, reference: str) -> str:
        message_id = "sbx_" + secrets.token_hex(8)
        record = {
            "id": message_id,
            "to": to,
            "text": text,
            "reference": reference,
            "sent_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        with self._lock, self.outbox.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        log.info("sms_sent", sent_to=mask(to), reference=reference, message_id=message_id)
        return message_id

    def messages(self, to: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The newest messages first (optionally only those to one number)."""
        if not self.outbox.exists():
            return []
        with self._lock:
            lines = self.outbox.read_text(encoding="utf-8").splitlines()[-self.keep :]
        records = [json.loads(line) for line in reversed(lines) if line.strip()]
        if to is not None:
            records = [r for r in records if r["to"] == to]
        return records[:limit]
