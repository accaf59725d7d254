"""Prefixed, time-sortable identifiers (`tr_01j...`).

The body is a ULID (48-bit millisecond time + 80 random bits, Crockford base32, lower case), so
ids sort by creation time, which cursor pagination relies on. Every id fits the core's 35-char
ExternalReference.
"""

from __future__ import annotations

import re
import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
# ptn partner, lnk link, tr transfer, po payout, rf refund, evt event, whe webhook endpoint,
# whd webhook delivery, wha webhook attempt, stl settlement, brk reconciliation break,
# vlt vault entry, hld hold, ...
PREFIXES = frozenset(
    "ptn lnk tr po rf evt whe whd wha stl req otp brk msg fee aud ntf cap idk pwh vlt hld".split()
)
_PATTERN = re.compile(r"^([a-z]{2,4})_([0-9a-hjkmnp-tv-z]{26})$")


def _encode(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 32)
        chars.append(_ALPHABET[rest])
    return "".join(reversed(chars))


def new_id(prefix: str, *, at_ms: int | None = None) -> str:
    """A new id such as `tr_01j9z3...`; `at_ms` pins the time part (tests, backfills)."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    millis = time.time_ns() // 1_000_000 if at_ms is None else at_ms
    return f"{prefix}_{_encode(millis, 10)}{_encode(secrets.randbits(80), 16)}"


def is_id(value: str, prefix: str | None = None) -> bool:
    """Whether `value` is a well-formed id (of `prefix`, if given)."""
    match = _PATTERN.match(value)
    return bool(match) and (prefix is None or match.group(1) == prefix)  # type: ignore[union-attr]
