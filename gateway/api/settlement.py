"""Settlement: the core's ingestion endpoints, partners' settlements, operators' reconciliation.

`POST /core/v1/iso20022` reads the request body as a stream (the WSGI input), never as one
buffer: the spec declares it with XML media types, which connexion does not validate or read,
and the gateway middleware does not buffer bulk paths (see gateway/app.py BULK_PATHS).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import flask

from gateway.api.deps import container, current_partner
from gateway.api.params import a_date
from gateway.domain.errors import InvalidRequest

REPLAYED = "Idempotent-Replayed"


def _actor() -> str:
    return f"operator:{current_partner().id}"


def _date(value: str, name: str) -> date:
    day = a_date(name, value, required=True)
    assert day is not None  # required: refused above when missing
    return day


def _headers(replayed: bool) -> dict[str, str]:
    return {REPLAYED: "true"} if replayed else {}


# --- the core --------------------------------------------------------------------------------


def ingest_iso20022() -> Any:
    stream = flask.request.environ["wsgi.input"]
    outcome = container().settlement.ingest_iso20022(current_partner(), stream)
    return outcome.body, 200, _headers(outcome.replayed)


def ingest_events(body: dict[str, Any]) -> Any:
    message_id = body.get("batch_id") or flask.request.headers.get("Idempotency-Key")
    if not message_id:
        raise InvalidRequest(
            "Name the batch: a batch_id in the body or an Idempotency-Key header",
            code="validation_failed",
            errors=[{"pointer": "/batch_id", "detail": "is required without Idempotency-Key"}],
        )
    # The bytes as received, kept for audit: connexion 3 replays the body it read for
    # validation to Flask, so they are still there (and cached by Flask) next to `body`.
    raw = flask.request.get_data(cache=True)
    outcome = container().settlement.ingest_events(
        current_partner(), str(message_id), body, raw=raw
    )
    return outcome.body, 200, _headers(outcome.replayed)


# --- partners --------------------------------------------------------------------------------


def _period(period: dict[str, str]) -> dict[str, date | None]:
    """`from` and `to` (query parameters that are Python keywords) as dates."""
    return {
        "date_from": _date(period["from"], "from") if period.get("from") else None,
        "date_to": _date(period["to"], "to") if period.get("to") else None,
    }


def list_settlements(
    limit: int = 50, cursor: str | None = None, status: str | None = None, **period: str
) -> dict[str, Any]:
    return container().settlement.settlements_page(
        current_partner().id, cursor=cursor, limit=limit, status=status, **_period(period)
    )


def get_settlement(settlement_id: str) -> dict[str, Any]:
    return container().settlement.get_settlement(current_partner().id, settlement_id)


# --- operators -------------------------------------------------------------------------------


def list_breaks(
    limit: int = 50,
    cursor: str | None = None,
    status: str | None = None,
    type: str | None = None,
    partner_id: str | None = None,
    settlement_date: str | None = None,
) -> dict[str, Any]:
    return container().settlement.breaks_page(
        cursor=cursor,
        limit=limit,
        status=status,
        type=type,
        partner_id=partner_id,
        settlement_date=_date(settlement_date, "settlement_date") if settlement_date else None,
    )


def get_break(break_id: str) -> dict[str, Any]:
    return container().settlement.get_break(break_id)


def resolve_break(break_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return container().settlement.resolve_break(break_id, reason=body["reason"], actor=_actor())


def report(settlement_date: str) -> dict[str, Any]:
    return container().settlement.report(_date(settlement_date, "settlement_date"))


def close(settlement_date: str, body: dict[str, Any]) -> dict[str, Any]:
    closed = container().settlement.close_date(
        _date(settlement_date, "settlement_date"),
        actor=_actor(),
        reason=body["reason"],
        partner_id=body.get("partner_id"),
    )
    return {"data": closed}


def admin_list_settlements(
    limit: int = 50,
    cursor: str | None = None,
    status: str | None = None,
    partner_id: str | None = None,
    **period: str,
) -> dict[str, Any]:
    return container().settlement.settlements_page(
        partner_id, cursor=cursor, limit=limit, status=status, **_period(period)
    )


def list_messages(
    limit: int = 50, cursor: str | None = None, sender_id: str | None = None
) -> dict[str, Any]:
    return container().settlement.messages_page(cursor=cursor, limit=limit, sender_id=sender_id)


def message_raw(message_id: str) -> flask.Response:
    view, chunks = container().settlement.message_raw(message_id)
    suffix = ".xml.gz" if view["format"].startswith("camt.") else ".json.gz"
    return flask.Response(
        chunks,
        mimetype="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="{view["id"]}{suffix}"',
            "X-Content-SHA256": view["sha256"] or "",
        },
    )
