"""Rate limits shared through Redis: two limiter instances (two processes) share one budget."""

from __future__ import annotations

import os
import uuid

import pytest

from gateway.domain.errors import RateLimited
from gateway.security.ratelimit import RateLimiter

REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis at {REDIS_URL} is required under CI: {exc}")
        pytest.skip(f"Redis unreachable at {REDIS_URL}")
    return REDIS_URL


def test_instances_share_one_budget(redis_url: str) -> None:
    first, second = RateLimiter(redis_url), RateLimiter(redis_url)
    partner = f"ptn_{uuid.uuid4().hex}"
    quotas = [
        first.hit("partner", partner, "3/minute"),
        second.hit("partner", partner, "3/minute"),
        first.hit("partner", partner, "3/minute"),
    ]
    assert [q.remaining for q in quotas] == [2, 1, 0]
    with pytest.raises(RateLimited) as refused:
        second.hit("partner", partner, "3/minute")
    assert int(refused.value.headers["Retry-After"]) >= 1
