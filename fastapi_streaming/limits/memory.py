"""Counters of one process that answer a charge without handing the event loop on.

``limits``' ``MemoryStorage`` starts an expiry task after every call, and that task takes each
moving window's lock while a thread bisects the window's timestamps. A publish charged in the
meantime waits for the lock, so for a thread hop and a few turns of the event loop; on a busy
server a turn is a write to every client with events waiting. The four publishes that the
fan-out benchmark's pipelined connections had in flight together then reached the broker one
at a time instead of in one batch (1.4 publishes per batch instead of 4.0), and every client
got each event in a write of its own. In one event loop nothing else runs between two lines
without an ``await``, so the same counters need neither locks nor a task: expired counters are
dropped when they are next used, and the rest at most once a second, inline.
"""

from __future__ import annotations

import bisect
import time

from limits.aio.storage import MemoryStorage
from limits.aio.storage.memory import Entry

#: Seconds between two sweeps of expired counters and window entries.
SWEEP_INTERVAL = 1.0


class LocalStorage(MemoryStorage):
    """``MemoryStorage``'s counters and windows (the library's strategies read them as they
    are), charged without locks, tasks or threads. Not registered under a URL scheme."""

    def __init__(self) -> None:
        super().__init__()
        self._swept = time.time()

    def _sweep(self, now: float) -> None:
        if now - self._swept < SWEEP_INTERVAL:
            return
        self._swept = now
        for key in [key for key, at in self.expirations.items() if at <= now]:
            self.storage.pop(key, None)
            self.expirations.pop(key, None)
        for key in list(self.events):
            events = self.events[key]
            # Newest first: the expired entries are the tail.
            del events[bisect.bisect_left(events, -now, key=lambda entry: -entry.expiry) :]
            if not events:
                del self.events[key]

    def _expire(self, key: str, now: float) -> None:
        if self.expirations.get(key, 0) <= now:
            self.storage.pop(key, None)
            self.expirations.pop(key, None)

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        self._sweep(now)
        self._expire(key, now)
        self.storage[key] += amount
        if self.storage[key] == amount:
            self.expirations[key] = now + expiry
        return self.storage[key]

    async def decr(self, key: str, amount: int = 1) -> int:
        now = time.time()
        self._sweep(now)
        self._expire(key, now)
        self.storage[key] = max(self.storage[key] - amount, 0)
        return self.storage[key]

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = time.time()
        self._sweep(now)
        events = self.events.setdefault(key, [])
        entry = events[limit - amount] if len(events) > limit - amount else None
        if entry is not None and entry.atime >= now - expiry:
            return False
        events[:0] = [Entry(expiry)] * amount
        # Only the newest ``limit`` entries can refuse anything (Redis keeps as many).
        del events[limit:]
        return True
