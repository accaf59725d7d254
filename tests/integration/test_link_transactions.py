"""GET /v1/links/{id}/transactions: an unreadable booking date is a 400 naming the parameter."""

from __future__ import annotations

import pytest

from tests.flows import create_active_link


@pytest.fixture(scope="module")
def owned_link(client, container, core, make_partner):  # type: ignore[no-untyped-def]
    partner = make_partner()
    return partner, create_active_link(client, container, core, partner)


@pytest.mark.parametrize("value", ["yesterday", "2023-13-03", "2023-02-03T04:05:06Z", "20230203"])
@pytest.mark.parametrize("parameter", ["from", "to"])
def test_an_unreadable_date_is_a_400(client, owned_link, parameter: str, value: str) -> None:  # type: ignore[no-untyped-def]
    partner, link = owned_link
    response = client.get(
        f"/v1/links/{link['id']}/transactions", params={parameter: value}, headers=partner.auth
    )
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert problem["errors"] == [
        {"parameter": parameter, "detail": "must be a valid date (YYYY-MM-DD)"}
    ]
    assert value not in response.text


def test_a_readable_period_is_answered(client, core, owned_link) -> None:  # type: ignore[no-untyped-def]
    partner, link = owned_link
    response = client.get(
        f"/v1/links/{link['id']}/transactions",
        params={"from": "2023-02-01", "to": "2023-02-28"},
        headers=partner.auth,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []
