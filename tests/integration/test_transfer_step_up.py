"""Step-up confirmation of large debits: lock-out, a bank without the customer's mobile, and
codes that never reach the logs."""

from __future__ import annotations

import json

import pytest

from tests.flows import Setup, charge_fees, last_code, post, post_transfer
from tests.integration.test_transfers import _mobile_of, events_of

STEP_UP_AMOUNT = "5000.00"  # the test settings' CNY threshold (and the consent's per-transaction)


def _wrong(code: str, offset: int = 1) -> str:
    return f"{(int(code) + offset) % 10**6:06d}"


def _confirm(client, s: Setup, transfer_id: str, code: str):  # type: ignore[no-untyped-def]
    return post(client, s, f"/v1/transfers/{transfer_id}/confirm", {"code": code})


def test_five_wrong_codes_fail_the_transfer_as_step_up_locked(
    client, container, core, funded
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    transfer = post_transfer(client, s, STEP_UP_AMOUNT).json()
    assert transfer["status"] == "requires_action"
    code = last_code(container, _mobile_of(container, s))
    attempts = container.settings.otp_max_attempts
    assert attempts == 5
    remaining = []
    for n in range(1, attempts):
        wrong = _confirm(client, s, transfer["id"], _wrong(code, n))
        assert wrong.status_code == 422, wrong.text
        assert wrong.json()["code"] == "otp_invalid"
        remaining.append(wrong.json()["attempts_remaining"])
    assert remaining == [4, 3, 2, 1]
    last = _confirm(client, s, transfer["id"], _wrong(code, attempts))
    # The last attempt ends the transfer: answered with the failed transfer (or a 422 naming why).
    if last.status_code == 422:
        assert last.json()["code"] == "step_up_locked"
    else:
        assert last.status_code == 200, last.text
        assert last.json()["status"] == "failed"
    after = client.get(f"/v1/transfers/{transfer['id']}", headers=s.partner.auth).json()
    assert after["status"] == "failed"
    assert after["failure"]["code"] == "step_up_locked"
    assert after["next_action"] is None
    assert after["history"][-1]["from"] == "requires_action"
    # Even the right code is too late now, and nothing ever moved.
    late = _confirm(client, s, transfer["id"], code)
    assert late.status_code == 409
    assert late.json()["code"] == "transfer_state_conflict"
    assert core.available(s.account) == "10000.00"
    assert core.postings(transfer["id"]) == 0
    assert [e.type for e in events_of(container, transfer["id"])] == [
        "transfer.requires_action",
        "transfer.failed",
    ]


def test_a_step_up_without_a_registered_mobile_is_refused_before_anything_is_recorded(
    client, core, core_simulator, funded
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    core_simulator.ledger.update_account(s.account, mobile=None)  # the bank dropped the number
    refused = post_transfer(client, s, STEP_UP_AMOUNT)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "no_registered_mobile"
    listed = client.get(f"/v1/transfers?link_id={s.link['id']}", headers=s.partner.auth).json()
    assert listed["data"] == []
    assert core.available(s.account) == "10000.00"
    # Below the threshold no code is needed, so the missing number does not matter.
    assert post_transfer(client, s, "4999.99").json()["status"] == "succeeded"


def test_step_up_codes_and_the_mobile_never_reach_the_logs(
    client, container, funded, captured_logs
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    transfer = post_transfer(client, s, STEP_UP_AMOUNT).json()
    mobile = _mobile_of(container, s)
    code = last_code(container, mobile)
    wrong = _wrong(code, 7)
    assert _confirm(client, s, transfer["id"], wrong).status_code == 422
    confirmed = _confirm(client, s, transfer["id"], code)
    assert confirmed.json()["status"] == "succeeded"
    logs = captured_logs()
    assert f"OTP sent to ****{mobile[-4:]}" in logs
    assert mobile.lstrip("+") not in logs and mobile[-8:] not in logs
    assert s.account not in logs
    for line in logs.splitlines():
        record = json.loads(line)
        text = json.dumps({k: v for k, v in record.items() if k != "timestamp"})
        assert code not in text, record
        assert wrong not in text, record


@pytest.mark.parametrize("ended_by", ["operator suspension", "partner revocation"])
def test_a_step_up_confirmed_after_the_link_was_ended_moves_no_money(
    client, container, core, funded, make_partner, ended_by: str
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    transfer = post_transfer(client, s, STEP_UP_AMOUNT).json()
    code = last_code(container, _mobile_of(container, s))
    if ended_by == "operator suspension":
        operator = make_partner(kind="operator")
        ended = client.patch(
            f"/admin/v1/links/{s.link['id']}",
            headers=operator.auth,
            json={"status": "suspended", "reason": "fraud suspected"},
        )
    else:
        ended = client.delete(f"/v1/links/{s.link['id']}", headers=s.partner.auth)
    assert ended.status_code == 200, ended.text
    _confirm(client, s, transfer["id"], code)
    after = client.get(f"/v1/transfers/{transfer['id']}", headers=s.partner.auth).json()
    assert core.postings(transfer["id"]) == 0
    assert core.available(s.account) == "10000.00"
    assert after["status"] in ("requires_action", "failed")


@pytest.mark.parametrize("ending", ["step_up_locked", "step_up_expired"])
def test_a_failed_step_up_waives_its_fee(
    client, container, funded, restore_clock, ending: str
) -> None:  # type: ignore[no-untyped-def]
    s = funded()
    charge_fees(container, s, fixed=100, maximum=1_000)
    transfer = post_transfer(client, s, STEP_UP_AMOUNT).json()
    assert transfer["fee"] == {"amount": {"value": "1.00", "currency": "CNY"}, "status": "pending"}
    if ending == "step_up_locked":
        code = last_code(container, _mobile_of(container, s))
        for n in range(1, container.settings.otp_max_attempts + 1):
            _confirm(client, s, transfer["id"], _wrong(code, n))
    else:
        restore_clock.advance(seconds=container.settings.otp_ttl_seconds + 60)
        container.recovery.expire()
        s.partner.renew()
    container.recovery.book_fees()
    after = client.get(f"/v1/transfers/{transfer['id']}", headers=s.partner.auth).json()
    assert (after["status"], after["failure"]["code"]) == ("failed", ending)
    assert after["fee"]["status"] == "waived"
