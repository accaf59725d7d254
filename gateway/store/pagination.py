"""Cursor pagination over time-sortable ids: stable under inserts, no offsets."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from gateway.domain.errors import InvalidRequest
from gateway.domain.ids import is_id


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        last_id = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        if not is_id(last_id.decode()):
            raise ValueError(cursor)
        return last_id.decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest(
            "The cursor is not one this API issued",
            code="invalid_cursor",
            errors=[{"parameter": "cursor", "detail": "is not a valid cursor"}],
        ) from None


def narrowed(
    query: Select[Any],
    equals: dict[InstrumentedAttribute[Any], Any],
    created: InstrumentedAttribute[Any],
    created_from: Any = None,
    created_to: Any = None,
) -> Select[Any]:
    """A list query with the filters the caller gave (None or empty means any); the
    creation window is half-open, [created_from, created_to)."""
    for column, value in equals.items():
        if value:
            query = query.where(column == value)
    if created_from:
        query = query.where(created >= created_from)
    if created_to:
        query = query.where(created < created_to)
    return query


def page(
    session: Session,
    query: Select[Any],
    id_column: InstrumentedAttribute[str],
    *,
    cursor: str | None,
    limit: int,
    render: Callable[[Any], dict[str, Any]],
    newest_first: bool = True,
) -> dict[str, Any]:
    """One page `{"data": [...], "has_more": bool, "next_cursor": str|None}`."""
    if cursor:
        last = decode_cursor(cursor)
        query = query.where(id_column < last if newest_first else id_column > last)
    query = query.order_by(id_column.desc() if newest_first else id_column.asc()).limit(limit + 1)
    rows: Sequence[Any] = session.scalars(query).all()
    has_more = len(rows) > limit
    items = rows[:limit]
    next_cursor = encode_cursor(getattr(items[-1], id_column.key)) if has_more and items else None
    return {
        "data": [render(item) for item in items],
        "has_more": has_more,
        "next_cursor": next_cursor,
    }
