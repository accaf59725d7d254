"""Another partner's transfer is a 404 on every action and sub-resource, and acting on it
changes nothing: no capture, void, confirmation or refund, no money moved."""

from __future__ import annotations

from typing import Any

from tests.flows import post, post_json, post_transfer


def _get(client, partner, path: str) -> Any:  # type: ignore[no-untyped-def]
    return client.get(path, headers=partner.auth)


def _assert_not_found(response: Any, code: str) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["code"] == code


def test_another_partner_cannot_capture_or_void_a_hold(client, core, funded, make_partner) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    held = post_transfer(client, s, "300.00", capture_method="manual").json()
    assert held["status"] == "authorized"
    intruder = make_partner()
    path = f"/v1/transfers/{held['id']}"
    _assert_not_found(
        post_json(
            client, f"{path}/capture", intruder, {"amount": {"value": "300.00", "currency": "CNY"}}
        ),
        "transfer_not_found",
    )
    _assert_not_found(post_json(client, f"{path}/capture", intruder), "transfer_not_found")
    _assert_not_found(post_json(client, f"{path}/void", intruder), "transfer_not_found")
    after = _get(client, s.partner, path).json()
    assert (after["status"], after["amount_captured"]["value"]) == ("authorized", "0.00")
    assert core.available(s.account) == "9700.00"  # still held, not captured, not released
    assert core.postings(held["id"]) == 0
    assert post(client, s, f"{path}/void").json()["status"] == "voided"  # the owner still can


def test_another_partner_cannot_confirm_a_step_up(client, container, funded, make_partner) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    pending = post_transfer(client, s, "5000.00").json()
    assert pending["status"] == "requires_action"
    intruder = make_partner()
    path = f"/v1/transfers/{pending['id']}"
    for _ in range(container.settings.otp_max_attempts + 1):  # not even a lock-out by guessing
        _assert_not_found(
            post_json(client, f"{path}/confirm", intruder, {"code": "000000"}),
            "transfer_not_found",
        )
    after = _get(client, s.partner, path).json()
    assert after["status"] == "requires_action"
    assert after["next_action"]["attempts_remaining"] == container.settings.otp_max_attempts


def test_another_partner_cannot_refund_or_read_refunds(client, core, funded, make_partner) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    transfer = post_transfer(client, s, "100.00").json()
    refund = post(
        client,
        s,
        f"/v1/transfers/{transfer['id']}/refunds",
        {"amount": {"value": "10.00", "currency": "CNY"}},
    ).json()
    assert refund["status"] == "succeeded"
    intruder = make_partner()
    path = f"/v1/transfers/{transfer['id']}/refunds"
    _assert_not_found(
        post_json(client, path, intruder, {"amount": {"value": "90.00", "currency": "CNY"}}),
        "transfer_not_found",
    )
    _assert_not_found(_get(client, intruder, path), "transfer_not_found")
    _assert_not_found(_get(client, intruder, f"/v1/refunds/{refund['id']}"), "refund_not_found")
    _assert_not_found(
        _get(client, intruder, f"/v1/transfers/{transfer['id']}"), "transfer_not_found"
    )
    after = _get(client, s.partner, f"/v1/transfers/{transfer['id']}").json()
    assert after["amount_refunded"]["value"] == "10.00"
    assert [r["id"] for r in _get(client, s.partner, path).json()["data"]] == [refund["id"]]
    assert core.available(s.account) == "9910.00"
