"""Per-partner rate limits with the `limits` library (memory, or Redis shared by instances).

Responses carry the IETF `RateLimit-Limit/Remaining/Reset` headers; a refusal is a 429 problem
with `Retry-After`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

from gateway.domain.errors import RateLimited


@lru_cache(maxsize=256)
def _parse(expression: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(expression))


@dataclass(frozen=True)
class Quota:
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


class RateLimiter:
    def __init__(self, storage_url: str | None) -> None:
        storage = storage_from_string(storage_url or "memory://")
        # Redis: the sliding-window counter costs O(1) per hit; memory: the exact moving window.
        self._limiter = (
            SlidingWindowCounterRateLimiter(storage)
            if storage_url
            else MovingWindowRateLimiter(storage)
        )

    def hit(self, namespace: str, key: str, expression: str) -> Quota:
        """Count one request; raise `RateLimited` if any limit in `expression` is exhausted."""
        tightest: Quota | None = None
        for item in _parse(expression):
            allowed = self._limiter.hit(item, namespace, key)
            stats = self._limiter.get_window_stats(item, namespace, key)
            reset = max(1, math.ceil(stats.reset_time - time.time()))
            quota = Quota(item.amount, max(0, stats.remaining), reset)
            if not allowed:
                raise RateLimited(
                    "Rate limit exceeded; retry after the time in Retry-After",
                    headers={**quota.headers(), "Retry-After": str(reset)},
                )
            if tightest is None or quota.remaining < tightest.remaining:
                tightest = quota
        assert tightest is not None
        return tightest
