"""Settlement arithmetic and entry identity (pure)."""

from __future__ import annotations

from datetime import date

from gateway.domain.money import Money
from gateway.domain.settlement import Position, SettlementEntry, Side, mask_account


def _entry(**changes: object) -> SettlementEntry:
    values: dict[str, object] = {
        "account": "9000000000000101",
        "amount": Money(1250, "CNY"),
        "side": Side.CREDIT,
        "booking_date": date(2026, 1, 2),
        "reference": "tr_01m84qy0vqqs38h4prbpte9e4b",
        "core_reference": "CB20260102ABCDEF",
        "entry_reference": "NTRY000000000042",
    }
    values.update(changes)
    return SettlementEntry(**values)  # type: ignore[arg-type]


def test_the_net_position_is_the_signed_change_of_the_settlement_account() -> None:
    sums = {
        "debits": (58050, 6),  # credited to the account
        "credits": (-8000, 1),  # taken from it
        "refunds": (-5000, 1),
        "fees": (-700, 7),
        "reversals": (-7000, 1),
    }
    position = Position.from_sums("CNY", sums)
    assert position.figures() == {
        "debits": 58050,
        "credits": 8000,
        "refunds": 5000,
        "fees": 700,
        "reversals": -7000,
        "net": 37350,
    }
    assert position.net == sum(total for total, _count in sums.values())
    assert position.entry_count == 16
    assert Position.from_sums("CNY", {}).figures()["net"] == 0


def test_one_booked_entry_has_one_identity_whatever_message_reports_it() -> None:
    notified = _entry(record_id="N1", seq=4, value_date=date(2026, 1, 3))
    stated = _entry(record_id="S1", seq=977, reference=None)  # another message, less detail
    assert notified.identity() == stated.identity()
    assert _entry(side=Side.DEBIT).identity() != notified.identity()  # the other leg
    assert _entry(account="9000000000000102").identity() != notified.identity()
    assert _entry(reversal=True).identity() != notified.identity()
    assert _entry(core_reference="CB2").identity() != notified.identity()


def test_without_the_cores_reference_the_entry_reference_then_the_content_identify() -> None:
    by_ntry = _entry(core_reference=None)
    assert by_ntry.identity() == _entry(core_reference=None, reference=None).identity()
    assert by_ntry.identity() != _entry(core_reference=None, entry_reference="N2").identity()
    by_content = _entry(core_reference=None, entry_reference=None)
    assert (
        by_content.identity()
        != _entry(core_reference=None, entry_reference=None, amount=Money(1251, "CNY")).identity()
    )


def test_signed_amounts_and_masks() -> None:
    assert _entry().signed_minor == 1250
    assert _entry(side=Side.DEBIT).signed_minor == -1250
    assert Side.from_iso("DBIT") is Side.DEBIT
    assert mask_account("9000000000000101") == "****0101"
    assert mask_account(None) is None
