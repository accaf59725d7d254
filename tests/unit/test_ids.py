import pytest

from gateway.domain.ids import is_id, new_id


def test_ids_are_prefixed_sortable_and_fit_a_core_reference() -> None:
    first = new_id("tr", at_ms=1_700_000_000_000)
    second = new_id("tr", at_ms=1_700_000_000_001)
    assert first.startswith("tr_") and len(first) <= 35
    assert first < second
    assert is_id(first, "tr") and not is_id(first, "po")


def test_unknown_prefixes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown id prefix"):
        new_id("xx")


def test_ids_do_not_collide() -> None:
    assert len({new_id("evt") for _ in range(10_000)}) == 10_000
