"""The audit log: append-only records of operator and security-relevant actions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway.domain.ids import new_id
from gateway.observability.context import request_id_var
from gateway.store.tables import AuditEntry


def record_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    at: datetime,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one audit entry in the caller's transaction (so it commits with the change)."""
    entry = AuditEntry(
        id=new_id("aud"),
        at=at,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details or {},
        request_id=request_id_var.get(),
    )
    session.add(entry)
    return entry
