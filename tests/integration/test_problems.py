"""Every error is RFC 9457 problem+json with a code and the request id, and changes nothing."""

from __future__ import annotations

import json

import pytest

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def operator(make_partner):  # type: ignore[no-untyped-def]
    return make_partner(kind="operator")


@pytest.fixture
def target(make_partner):  # type: ignore[no-untyped-def]
    return make_partner()


def _patch(client, operator, partner_id: str, body: bytes | str, **headers: str):  # type: ignore[no-untyped-def]
    return client.patch(
        f"/admin/v1/partners/{partner_id}",
        content=body,
        headers={**operator.auth, "Content-Type": "application/json", **headers},
    )


def _assert_problem(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:wallet-gateway:problem:{code}"
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["title"]
    return body  # type: ignore[no-any-return]


def test_a_valid_patch_works(client, operator, target) -> None:  # type: ignore[no-untyped-def]
    response = _patch(
        client, operator, target.id, json.dumps({"status": "suspended", "reason": "risk review"})
    )
    assert response.status_code == 200
    assert response.json()["status"] == "suspended"


def test_malformed_json_is_a_400_and_changes_nothing(client, operator, target, container) -> None:  # type: ignore[no-untyped-def]
    body = _assert_problem(
        _patch(client, operator, target.id, '{"status": "suspended",'), 400, "malformed_json"
    )
    assert "not valid JSON" in body["detail"]
    assert container.partners.get(target.id)["status"] == "active"


def test_duplicate_keys_and_nan_are_malformed(client, operator, target) -> None:  # type: ignore[no-untyped-def]
    dup = '{"status": "suspended", "status": "active", "reason": "xyz"}'
    _assert_problem(_patch(client, operator, target.id, dup), 400, "malformed_json")
    nan = '{"status": "suspended", "reason": NaN}'
    _assert_problem(_patch(client, operator, target.id, nan), 400, "malformed_json")


def test_every_validation_error_is_listed_with_a_pointer(
    client, operator, target, container
) -> None:  # type: ignore[no-untyped-def]
    payload = {"status": "frozen", "reason": "x", "account_number": "6222021234567890"}
    body = _assert_problem(
        _patch(client, operator, target.id, json.dumps(payload)), 400, "validation_failed"
    )
    pointers = {error["pointer"]: error["detail"] for error in body["errors"]}
    assert pointers["/account_number"] == "is not an allowed field"
    assert pointers["/status"].startswith("must be one of")
    assert pointers["/reason"] == "must be at least 3 characters long"
    assert "6222021234567890" not in json.dumps(body)  # values are never echoed
    assert container.partners.get(target.id)["status"] == "active"


def test_missing_required_fields_point_at_the_field(client, operator, target) -> None:  # type: ignore[no-untyped-def]
    body = _assert_problem(_patch(client, operator, target.id, "{}"), 400, "validation_failed")
    assert {e["pointer"] for e in body["errors"]} == {"/status", "/reason"}


def test_an_empty_body_is_required(client, operator, target) -> None:  # type: ignore[no-untyped-def]
    _assert_problem(_patch(client, operator, target.id, ""), 400, "validation_failed")


def test_oversized_body_is_a_413(client, operator, target, settings) -> None:  # type: ignore[no-untyped-def]
    big = json.dumps({"status": "suspended", "reason": "x" * (settings.max_body_bytes + 10)})
    _assert_problem(_patch(client, operator, target.id, big), 413, "payload_too_large")


def test_oversized_chunked_body_is_a_413(client, operator, target, settings) -> None:  # type: ignore[no-untyped-def]
    chunk = b"x" * 65536

    def stream():  # type: ignore[no-untyped-def]
        yield b'{"status": "suspended", "reason": "'
        for _ in range(settings.max_body_bytes // len(chunk) + 2):
            yield chunk
        yield b'"}'

    response = client.patch(
        f"/admin/v1/partners/{target.id}",
        content=stream(),
        headers={**operator.auth, "Content-Type": "application/json"},
    )
    _assert_problem(response, 413, "payload_too_large")


def test_wrong_media_type_is_a_415(client, operator, target) -> None:  # type: ignore[no-untyped-def]
    response = _patch(
        client, operator, target.id, "status=suspended", **{"Content-Type": "text/plain"}
    )
    _assert_problem(response, 415, "unsupported_media_type")


def test_unknown_and_invalid_query_parameters(client, operator) -> None:  # type: ignore[no-untyped-def]
    body = _assert_problem(
        client.get("/admin/v1/partners?colour=red", headers=operator.auth), 400, "validation_failed"
    )
    assert body["errors"] == [
        {"parameter": "colour", "detail": "is not a parameter of this operation"}
    ]
    body = _assert_problem(
        client.get("/admin/v1/partners?limit=0&kind=bank", headers=operator.auth),
        400,
        "validation_failed",
    )
    assert {e["parameter"] for e in body["errors"]} == {"limit", "kind"}


def test_a_garbage_cursor_is_a_clear_400(client, operator) -> None:  # type: ignore[no-untyped-def]
    body = _assert_problem(
        client.get("/admin/v1/partners?cursor=%%%", headers=operator.auth), 400, "invalid_cursor"
    )
    assert body["errors"][0]["parameter"] == "cursor"


def test_not_found_and_method_not_allowed(client, operator) -> None:  # type: ignore[no-untyped-def]
    _assert_problem(client.get("/no/such/path"), 404, "not_found")
    _assert_problem(
        client.get("/admin/v1/partners/ptn_missing", headers=operator.auth),
        404,
        "partner_not_found",
    )
    _assert_problem(client.delete("/health/live"), 405, "method_not_allowed")


def test_wallets_cannot_use_the_operator_api(client, target) -> None:  # type: ignore[no-untyped-def]
    _assert_problem(
        client.get("/admin/v1/partners", headers=target.auth), 403, "insufficient_scope"
    )


def test_pagination_walks_every_partner_once(client, operator, make_partner) -> None:  # type: ignore[no-untyped-def]
    created = {make_partner(kind="merchant").id for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        query = "kind=merchant&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/admin/v1/partners?{query}", headers=operator.auth).json()
        seen += [p["id"] for p in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert created <= set(seen)
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen, reverse=True)


def test_internal_errors_reveal_nothing(container, captured_logs) -> None:  # type: ignore[no-untyped-def]
    from gateway.app import create_app

    app = create_app(container=container)

    def explode() -> None:
        raise RuntimeError("database password is hunter2 for account 6222021234567890")

    app.app.add_url_rule("/explode", "explode", explode)
    with app.test_client(raise_server_exceptions=False) as test_client:
        response = test_client.get("/explode")
    body = _assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    assert body["detail"].startswith("The gateway failed")
    logs = captured_logs()
    assert "RuntimeError" in logs  # the traceback is in the logs for operators...
    assert "6222021234567890" not in logs  # ...with the account number masked
