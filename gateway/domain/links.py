"""Account links: states, consent, and holder-name matching (pure rules)."""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum


class LinkStatus(StrEnum):
    PENDING = "pending_verification"  # OTP sent to the bank-registered mobile, not yet confirmed
    ACTIVE = "active"
    LOCKED = "locked"  # too many wrong OTPs: terminal, the partner starts a new link
    SUSPENDED = "suspended"  # by an operator or a risk rule; can be resumed
    REVOKED = "revoked"  # by the partner, the customer (through the bank) or an operator
    EXPIRED = "expired"  # consent expiry passed, or verification never completed


CONSENT_SCOPES = ("debit", "credit", "balance", "transactions")

_TRANSITIONS: dict[LinkStatus, frozenset[LinkStatus]] = {
    LinkStatus.PENDING: frozenset(
        {LinkStatus.ACTIVE, LinkStatus.LOCKED, LinkStatus.REVOKED, LinkStatus.EXPIRED}
    ),
    LinkStatus.ACTIVE: frozenset({LinkStatus.SUSPENDED, LinkStatus.REVOKED, LinkStatus.EXPIRED}),
    LinkStatus.SUSPENDED: frozenset({LinkStatus.ACTIVE, LinkStatus.REVOKED, LinkStatus.EXPIRED}),
    LinkStatus.LOCKED: frozenset(),
    LinkStatus.REVOKED: frozenset(),
    LinkStatus.EXPIRED: frozenset(),
}


def can_transition(current: str, target: str) -> bool:
    return LinkStatus(target) in _TRANSITIONS[LinkStatus(current)]


def normalize_name(name: str) -> str:
    """Case-, width-, accent-, punctuation- and spacing-insensitive form of a holder name."""
    folded = unicodedata.normalize("NFKD", name).casefold()
    without_marks = "".join(ch for ch in folded if not unicodedata.combining(ch))
    words = re.sub(r"[^\w]+", " ", without_marks).split()
    return " ".join(words)


def names_match(registered: str, presented: str) -> bool:
    """The holder name the bank has and the one the partner presented are the same person's.

    Tolerates case, spacing, punctuation, accents, full-width characters and word order
    ("WANG Wei" == "wei  wang"); anything else is a mismatch.
    """
    left, right = normalize_name(registered), normalize_name(presented)
    if not left or not right:
        return False
    return left == right or sorted(left.split()) == sorted(right.split())


def normalize_account_number(value: str) -> str:
    """Account numbers as the core knows them: no spaces or dashes, upper case."""
    return re.sub(r"[\s\-]", "", value).upper()
