"""GET /v1/transfers: the creation window filters and walking the cursor to the end."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.flows import Setup, post_transfer


def _list(client, s: Setup, **params: Any):  # type: ignore[no-untyped-def]
    return client.get("/v1/transfers", params=params, headers=s.partner.auth)


def _walk(client, s: Setup, **params: Any) -> list[str]:  # type: ignore[no-untyped-def]
    """Every id, page after page, following next_cursor until has_more is false."""
    ids: list[str] = []
    cursor = params.pop("cursor", None)
    for _ in range(50):
        page = _list(client, s, **params, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        body = page.json()
        ids += [t["id"] for t in body["data"]]
        assert len(body["data"]) <= params.get("limit", 50)
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return ids
        assert body["next_cursor"] and len(body["data"]) == params.get("limit", 50)
        cursor = body["next_cursor"]
    raise AssertionError("the cursor never ran out")


@pytest.fixture
def two_batches(client, funded, restore_clock):  # type: ignore[no-untyped-def]
    """Three transfers, then (a minute later) four more: (setup, early ids, late ids)."""
    s = funded()
    early = [post_transfer(client, s, f"{n}.00").json()["id"] for n in (1, 2, 3)]
    restore_clock.advance(minutes=1)
    late = [post_transfer(client, s, f"{n}.00").json()["id"] for n in (4, 5, 6, 7)]
    return s, early, late


def test_the_creation_window_is_half_open(client, two_batches) -> None:  # type: ignore[no-untyped-def]
    s, early, late = two_batches
    boundary = client.get(f"/v1/transfers/{late[0]}", headers=s.partner.auth).json()["created_at"]
    newest_first = list(reversed(early + late))
    assert _walk(client, s) == newest_first
    assert _walk(client, s, created_from=boundary) == list(reversed(late))  # at or after
    assert _walk(client, s, created_to=boundary) == list(reversed(early))  # strictly before
    assert _walk(client, s, created_from=boundary, created_to=boundary) == []
    # The same instant written with another offset selects the same transfers.
    shanghai = datetime.fromisoformat(boundary).astimezone(timezone(timedelta(hours=8)))
    assert _walk(client, s, created_from=shanghai.isoformat()) == list(reversed(late))
    later = (datetime.fromisoformat(boundary) + timedelta(days=1)).isoformat()
    assert _walk(client, s, created_from=later) == []


@pytest.mark.parametrize(
    "value", ["2023-02-03T04:05:06", "2023-02-03", "yesterday", "2023-13-03T04:05:06Z"]
)
@pytest.mark.parametrize("parameter", ["created_from", "created_to"])
@pytest.mark.parametrize(
    ("path", "kind"), [("/v1/transfers", "wallet"), ("/v1/payouts", "bank_channel")]
)
def test_a_creation_bound_without_an_offset_or_unreadable_is_a_400(
    client, make_partner, parameter: str, value: str, path: str, kind: str
) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner(kind=kind)
    response = client.get(path, params={parameter: value}, headers=partner.auth)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert [e["parameter"] for e in problem["errors"]] == [parameter]
    assert "offset" in problem["detail"]
    assert value not in response.text  # problems never echo submitted values


def test_following_the_cursor_returns_each_transfer_once(client, two_batches) -> None:  # type: ignore[no-untyped-def]
    s, early, late = two_batches
    everything = list(reversed(early + late))
    for limit in (1, 2, 3, 7, 8):
        assert _walk(client, s, limit=limit) == everything, limit
    # Filters hold on every page.
    boundary = client.get(f"/v1/transfers/{late[0]}", headers=s.partner.auth).json()["created_at"]
    assert _walk(client, s, limit=2, created_from=boundary) == list(reversed(late))
    assert _walk(client, s, limit=2, link_id=s.link["id"], created_to=boundary) == list(
        reversed(early)
    )


def test_transfers_created_while_paging_cause_no_duplicates_or_gaps(client, two_batches) -> None:  # type: ignore[no-untyped-def]
    s, early, late = two_batches
    first = _list(client, s, limit=3).json()
    newer = post_transfer(client, s, "8.00").json()["id"]  # lands before the cursor: not repeated
    rest = _walk(client, s, limit=3, cursor=first["next_cursor"])
    seen = [t["id"] for t in first["data"]] + rest
    assert seen == list(reversed(early + late))
    assert newer not in seen
    assert _walk(client, s, limit=3)[0] == newer


def test_a_cursor_that_was_not_issued_is_a_400(client, make_partner) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    response = client.get("/v1/transfers", params={"cursor": "x!"}, headers=partner.auth)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"
