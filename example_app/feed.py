"""A simulated price feed: a random walk per symbol, emitted through the streaming API.

It shows the two things every server-side producer needs:

- **It survives broker outages.** ``emit`` raises (503 ``Unavailable``) while the broker is
  unreachable; the feed logs it once, retries with exponential backoff and jitter, and carries
  on when the broker is back. A producer that let the exception end its task would stop for
  good on the first outage.
- **It runs once per deployment.** With several worker processes every quote would otherwise
  be emitted once per worker, so the workers elect the feed's runner with a lease: a Redis key
  that expires unless its holder keeps renewing it. The lease lives in ``FEED_LEASE_URL``, or
  in the broker itself when that is Redis (``redis://``, ``rediss://`` or ``redis-stream://``).
  Without a lease store (``memory://``, or another broker and no ``FEED_LEASE_URL``) there is
  no election: run one process. Losing the lease store counts as losing the lease, so two
  runners never emit at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

from fastapi_streaming import StreamingAPI
from fastapi_streaming.redact import redact_text

logger = logging.getLogger("fastapi_streaming.example")

SYMBOLS = {"AAPL": 190.0, "MSFT": 420.0, "GOOG": 170.0, "AMZN": 185.0}
LEADER_KEY = "example_app:feed-leader"
LEASE_MS = 3000
#: Backoff after a failure: from the first delay, doubling up to the last.
FIRST_RETRY_DELAY = 0.2
MAX_RETRY_DELAY = 5.0
#: The Redis schemes of broker URLs, and the scheme redis-py knows each by.
REDIS_SCHEMES = {"redis": "redis", "rediss": "rediss", "redis-stream": "redis"}

#: Renew the lease only if we still hold it: a read and a write in one step.
RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

Elect = Callable[[], Awaitable[bool]]


def lease_url(broker_url: str, configured: str | None = None) -> str | None:
    """The Redis URL the lease lives at: ``configured``, else the broker's if it is Redis.

    ``redis-stream://host/0?maxlen=1000`` is Redis too, under a scheme redis-py does not know
    (it raises ``ValueError``) and with options that are not redis-py's: keep the host,
    credentials and database, drop the rest.
    """
    if configured:
        return configured
    parts = urlsplit(broker_url)
    scheme = REDIS_SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        return None
    return urlunsplit((scheme, parts.netloc, parts.path, "", ""))


class PriceFeed:
    def __init__(
        self,
        streaming: StreamingAPI,
        *,
        interval: float = 0.5,
        lease: str | None = None,
    ) -> None:
        self.streaming = streaming
        self.interval = interval
        self.prices = dict(SYMBOLS)
        self.identity = f"{os.getpid()}-{random.getrandbits(32):08x}"
        self.lease = lease_url(streaming.broker_url, lease or os.environ.get("FEED_LEASE_URL"))
        #: Consecutive failures; the backoff grows with them and resets on success.
        self.failures = 0

    async def run(self) -> None:
        """Emit quotes until cancelled, whatever the broker and the lease store go through."""
        elect, close = self._election() if self.lease else (None, None)
        try:
            while True:
                try:
                    if elect is None or await elect():
                        await self.tick()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    await self._back_off(exc)
                    continue
                if self.failures:
                    logger.warning("The price feed is running again.")
                    self.failures = 0
                await asyncio.sleep(self.interval)
        finally:
            if close is not None:
                await close()

    async def _back_off(self, exc: Exception) -> None:
        self.failures += 1
        delay = min(FIRST_RETRY_DELAY * 2 ** (self.failures - 1), MAX_RETRY_DELAY)
        reason = redact_text(str(exc) or type(exc).__name__)
        if self.failures == 1:
            logger.warning("The price feed paused: %s; retrying with backoff.", reason)
        else:
            logger.info("The price feed is still paused (%s).", reason)
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))

    async def tick(self) -> None:
        now = datetime.now(timezone.utc)
        for symbol, price in self.prices.items():
            price = round(max(1.0, price * (1 + random.gauss(0, 0.002))), 2)
            self.prices[symbol] = price
            await self.streaming.emit(
                f"/stocks/{symbol}", {"symbol": symbol, "price": price, "time": now}
            )

    def _election(self) -> tuple[Elect, Callable[[], Awaitable[None]]]:
        from redis import asyncio as redis

        assert self.lease is not None
        client = redis.Redis.from_url(self.lease, socket_timeout=2, socket_connect_timeout=2)
        renew = client.register_script(RENEW)

        async def elect() -> bool:
            """Take the lease if nobody holds it, or renew it if we do.

            An error (the lease store is down) propagates: the feed pauses, and by the time
            the store is back the lease has expired, so whoever takes it next runs the feed.
            """
            if await client.set(LEADER_KEY, self.identity, nx=True, px=LEASE_MS):
                return True
            return bool(await renew(keys=[LEADER_KEY], args=[self.identity, LEASE_MS]))

        return elect, client.aclose
