"""A simulated price feed: a random walk per symbol, emitted through the streaming API.

With several worker processes on Redis only one of them may run the feed, or every quote would
be emitted once per worker. The workers elect the feed's runner with a Redis key that expires
unless its holder keeps renewing it; on ``memory://`` there is one process and no election.
"""

from __future__ import annotations

import asyncio
import os
import random
from datetime import datetime, timezone

from fastapi_streaming import StreamingAPI

SYMBOLS = {"AAPL": 190.0, "MSFT": 420.0, "GOOG": 170.0, "AMZN": 185.0}
LEADER_KEY = "example_app:feed-leader"
LEASE_MS = 3000


class PriceFeed:
    def __init__(self, streaming: StreamingAPI, *, interval: float = 0.5) -> None:
        self.streaming = streaming
        self.interval = interval
        self.prices = dict(SYMBOLS)
        self.identity = f"{os.getpid()}-{random.getrandbits(32):08x}"

    async def run(self) -> None:
        elect = self._redis_election() if self.streaming.broker_url.startswith("redis") else None
        try:
            while True:
                if elect is None or await elect():
                    await self.tick()
                await asyncio.sleep(self.interval)
        finally:
            if elect is not None:
                await self._redis.aclose()

    async def tick(self) -> None:
        now = datetime.now(timezone.utc)
        for symbol, price in self.prices.items():
            price = round(max(1.0, price * (1 + random.gauss(0, 0.002))), 2)
            self.prices[symbol] = price
            await self.streaming.emit(
                f"/stocks/{symbol}", {"symbol": symbol, "price": price, "time": now}
            )

    def _redis_election(self):  # type: ignore[no-untyped-def]
        from redis import asyncio as redis

        self._redis = redis.Redis.from_url(self.streaming.broker_url)

        async def elect() -> bool:
            """Take the lease if nobody holds it, or renew it if we do."""
            if await self._redis.set(LEADER_KEY, self.identity, nx=True, px=LEASE_MS):
                return True
            holder = await self._redis.get(LEADER_KEY)
            if holder is not None and holder.decode() == self.identity:
                await self._redis.pexpire(LEADER_KEY, LEASE_MS)
                return True
            return False

        return elect
