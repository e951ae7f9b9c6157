"""A token bucket per client address, so one client cannot flood the hub with requests.

Each subscription request makes the hub call a callback at least once, so an unlimited hub is
an amplifier. Buckets live in the process (each worker counts its own share) and the number of
buckets is bounded: the least recently seen clients are forgotten first.
"""

from __future__ import annotations

import time
from collections import OrderedDict

MAX_CLIENTS = 10_000


class RateLimiter:
    """``limit`` requests per ``period`` seconds per key, refilled continuously."""

    def __init__(self, limit: int, period: float, *, max_keys: int = MAX_CLIENTS) -> None:
        self.limit = limit
        self.rate = limit / period if period > 0 else float("inf")
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, key: str, now: float | None = None) -> float:
        """Take one token; return 0 if allowed, else the seconds until a token is available."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (float(self.limit), now))
        tokens = min(float(self.limit), tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1 - tokens) / self.rate
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait
