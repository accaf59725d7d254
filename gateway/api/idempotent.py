"""The Idempotency-Key protocol around a handler (see gateway/store/idempotency.py).

`idempotent(...)` claims the key, runs the use case once, stores its response (success or a
4xx problem) and replays it to retries. A retryable failure (5xx, 409, 429) releases the key
unless a resource was already attached, in which case a later retry resumes that resource.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import flask

from gateway.api.deps import container, current_partner
from gateway.api.problems import PROBLEM_JSON, problem_document
from gateway.domain.errors import GatewayError
from gateway.store.idempotency import IdempotencyRequest

Result = tuple[dict[str, Any], int]
REPLAYED = "Idempotent-Replayed"


def fingerprint(operation: str, payload: Any) -> str:
    canonical = json.dumps(
        {"operation": operation, "path": flask.request.path, "body": payload},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _response(body: dict[str, Any], status: int, headers: dict[str, str]) -> Any:
    if status >= 400:
        return flask.Response(
            json.dumps(body), status=status, headers=headers, mimetype=PROBLEM_JSON
        )
    return body, status, headers


def idempotent(
    operation: str,
    payload: Any,
    run: Callable[[IdempotencyRequest], Result],
    resume: Callable[[str], Result] | None = None,
) -> Any:
    """Run `run(request)` at most once per (partner, Idempotency-Key).

    `run` receives the IdempotencyRequest so the service can `attach` the resource it creates
    in the same transaction; `resume(resource_id)` renders that resource if the first attempt
    died after creating it.
    """
    gateway = container()
    request = IdempotencyRequest(
        partner_id=current_partner().id,
        key=flask.request.headers["Idempotency-Key"],
        operation=operation,
        fingerprint=fingerprint(operation, payload),
    )
    claim = gateway.idempotency.begin(request)
    if claim.kind == "replay":
        assert claim.body is not None and claim.status is not None
        return _response(claim.body, claim.status, {REPLAYED: "true"})
    if claim.kind == "resume" and resume is not None and claim.resource_id:
        body, status = resume(claim.resource_id)
        gateway.idempotency.complete(request, status, body)
        return _response(body, status, {REPLAYED: "true"})
    try:
        body, status = run(request)
    except GatewayError as exc:
        if exc.retryable or exc.status >= 500 or exc.status in (409, 429):
            gateway.idempotency.release(request)
        else:
            document = problem_document(
                exc.status,
                exc.code,
                exc.title,
                exc.detail,
                instance=flask.request.path,
                errors=exc.errors,
                extensions=exc.extensions,
            )
            gateway.idempotency.complete(request, exc.status, document)
        raise
    except BaseException:
        gateway.idempotency.release(request)
        raise
    if not request.response_stored:  # else `run` stored it in its outcome transaction
        gateway.idempotency.complete(request, status, body)
    return body, status, {}
