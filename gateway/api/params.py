"""Dates and instants from query parameters and bodies, refused with a clear 400.

The OpenAPI validator does not enforce `format: date` / `date-time`, so every handler reads
them here: an unreadable value is the caller's mistake (400 naming the field), never a 500.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from gateway.domain.errors import FieldError, InvalidRequest

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _where(name: str, in_body: bool) -> FieldError:
    return {"pointer": f"/{name}"} if in_body else {"parameter": name}


def a_date(
    name: str, value: str | None, *, in_body: bool = False, required: bool = False
) -> date | None:
    """`YYYY-MM-DD` (fromisoformat alone would also take 20240501 or 2024-W18-3)."""
    if not value and not required:
        return None
    try:
        if value and _DATE.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise InvalidRequest(
        f"{name} must be a date (YYYY-MM-DD)",
        code="validation_failed",
        errors=[{**_where(name, in_body), "detail": "must be a valid date (YYYY-MM-DD)"}],
    )


def an_instant(
    name: str, value: str | None, *, in_body: bool = False, required: bool = False
) -> datetime | None:
    """An RFC 3339 date-time, in UTC. A value without a UTC offset is refused rather than
    guessed: read as UTC it would silently shift the window by the caller's own offset."""
    if not value and not required:
        return None
    try:
        moment = datetime.fromisoformat(value or "")
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        raise InvalidRequest(
            f"{name} must be an RFC 3339 date-time with a UTC offset, "
            "e.g. 2024-05-01T00:00:00Z or 2024-05-01T08:00:00+08:00",
            code="validation_failed",
            errors=[
                {
                    **_where(name, in_body),
                    "detail": "must be a valid date-time (RFC 3339) with a UTC offset",
                }
            ],
        )
    return moment.astimezone(UTC)
