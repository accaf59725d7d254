import pytest

from gateway.domain.links import (
    LinkStatus,
    can_transition,
    names_match,
    normalize_account_number,
)


@pytest.mark.parametrize(
    ("registered", "presented"),
    [
        ("WANG Wei", "wang wei"),
        ("WANG Wei", "  Wang   WEI "),
        ("WANG Wei", "Wei Wang"),
        ("José Álvarez", "JOSE ALVAREZ"),
        ("O'Brien, Mary-Jane", "o brien mary jane"),
        ("\uff37\uff21\uff2e\uff27 \uff37\uff45\uff49", "WANG Wei"),  # full-width forms
        ("张伟", "张伟"),
    ],
)
def test_tolerated_differences(registered: str, presented: str) -> None:
    assert names_match(registered, presented)


@pytest.mark.parametrize(
    ("registered", "presented"),
    [("WANG Wei", "WANG Wen"), ("WANG Wei", "WANG"), ("张伟", "张玮"), ("WANG Wei", ""), ("", "")],
)
def test_real_mismatches(registered: str, presented: str) -> None:
    assert not names_match(registered, presented)


def test_terminal_states_go_nowhere() -> None:
    for terminal in (LinkStatus.LOCKED, LinkStatus.REVOKED, LinkStatus.EXPIRED):
        assert not any(can_transition(terminal, target) for target in LinkStatus)
    assert can_transition("pending_verification", "active")
    assert not can_transition("pending_verification", "suspended")
    assert can_transition("suspended", "active")


def test_account_numbers_are_normalized() -> None:
    assert normalize_account_number(" 6222-0212 3456 7890 ") == "6222021234567890"
