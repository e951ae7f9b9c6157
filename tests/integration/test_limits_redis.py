"""Plans counted in Redis: what a refusal tells the client about when to come back.

Redis reports a counter's time to live in whole seconds, rounded to the nearest, and the
``limits`` library adds it to the time after the answer. A refusal right at the start of a
window therefore came out one second longer than the window itself (``Retry-After: 61`` for a
plan of so many events a minute). The shared Redis on 127.0.0.1:6379, with a namespace of the
test's own.
"""

from __future__ import annotations

import pytest
from limits.aio.storage import RedisStorage
from redis.asyncio import Redis

from fastapi_streaming.limits import Limiter, Limits, Plan, QuotaExceeded
from fastapi_streaming.limits.limiter import Meter

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379"


async def test_retry_after_never_exceeds_the_window_of_a_quota_counted_in_redis(
    namespace: str,
) -> None:
    plan = Plan(name="minutely", quota="1/minute")
    limiter = Limiter(Limits(plan=plan, storage=REDIS_URL, namespace=namespace))
    meter = Meter(plan, "ann", namespace)
    await limiter.charge(meter)  # the one event of this window

    # As at the very first moment of the window: a whole minute to live, which Redis reports
    # as 60 s from any moment up to half a second later.
    redis = Redis.from_url(REDIS_URL)
    try:
        (counter,) = [key async for key in redis.scan_iter(match=f"*{namespace}*minutely*")]
        assert await redis.pexpire(counter, 60_000)
    finally:
        await redis.aclose()

    try:
        with pytest.raises(QuotaExceeded) as refused:
            await limiter.charge(meter)
    finally:  # the limits library keeps its Redis client open; close it, as a process exit would
        storage = limiter.storage
        assert isinstance(storage, RedisStorage)
        await storage.bridge.get_connection().aclose()
    assert refused.value.refusal.retry_after == 60
    assert refused.value.headers["Retry-After"] == "60"
