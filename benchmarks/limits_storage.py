"""What one charge to a plan's counters costs, per strategy of the ``limits`` library and storage.

Run: ``.venv/bin/python -m benchmarks.limits_storage`` (needs Redis on 127.0.0.1:6379).
docs/decisions.md ("Plans: counters") reports its figures.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

STRATEGIES: tuple[type[RateLimiter], ...] = (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)


async def measure(
    storage: Storage, strategy: type[RateLimiter], hits: int = 2000
) -> tuple[float, float]:
    """Microseconds per hit of cost 1 and per hit of cost 100 (a batch)."""
    limiter = strategy(storage)
    item = parse("1000000/day")
    key = uuid.uuid4().hex
    started = time.perf_counter()
    for _ in range(hits):
        await limiter.hit(item, key, "single")
    single = (time.perf_counter() - started) / hits * 1e6
    started = time.perf_counter()
    for _ in range(200):
        await limiter.hit(item, key, "batch", cost=100)
    batch = (time.perf_counter() - started) / 200 * 1e6
    await limiter.clear(item, key, "single")
    await limiter.clear(item, key, "batch")
    return single, batch


async def main() -> None:
    storages: dict[str, Storage] = {
        "memory": MemoryStorage(),
        "redis": RedisStorage(
            "async+redis://127.0.0.1:6379/0", implementation="redispy", key_prefix="bench-limits"
        ),
    }
    for name, storage in storages.items():
        for strategy in STRATEGIES:
            single, batch = await measure(storage, strategy)
            print(
                f"{name:7} {strategy.__name__:34} hit {single:7.1f} us  "
                f"hit(cost=100) {batch:7.1f} us"
            )


if __name__ == "__main__":
    asyncio.run(main())
