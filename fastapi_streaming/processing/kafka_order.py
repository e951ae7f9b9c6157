"""The records of many Kafka partitions in the order the broker took them.

A consumer over many topics hands out what it fetched partition by partition, a few hundred
records at a time: one topic's next seconds come before another topic's last one. Processed in
that order, event-time windows see events late that were not, and drop them (a burst over
1,000 topics lost most of its windows that way). Merging one fetch by timestamp is not enough,
because the next fetch may bring older records of partitions this one did not reach.

:class:`ArrivalOrder` keeps what was fetched per partition and releases records in timestamp
order up to a cutoff: the last timestamp fetched from any partition that the broker holds more
of (its next records are at least as new), and never later than ``grace_s`` ago. That second
bound is for the partitions that looked caught up at their last fetch: a record stamped by its
producer (Kafka's CreateTime) reaches the broker, and the next fetch, a little after its
timestamp, and may still be on its way. Redis needs neither bound of time: it stamps entries
itself as it appends them, so a later entry never has an older id. This is the Kafka twin of
the Redis Streams feed's merge by entry id (``stream_feed.in_arrival_order``). A partition
that stays behind does not hold the others back for longer than ``hold_s``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

#: Seconds records may wait for a partition that lags behind before they go out anyway.
HOLD_S = 2.0
#: Seconds after its timestamp a record goes out at the earliest: what a record may take from
#: its producer to a fetch of this process (the producer's linger, the request, the fetch).
GRACE_S = 0.5


class Record(NamedTuple):
    timestamp: int
    topic: str
    partition: int
    offset: int
    value: bytes | None


class ArrivalOrder:
    """Buffers fetched records per partition; :meth:`release` gives those safe to process."""

    def __init__(
        self,
        hold_s: float = HOLD_S,
        grace_s: float = GRACE_S,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.hold_s = hold_s
        self.grace_ms = int(grace_s * 1000)
        self.clock = clock
        self.wall_ms = wall_ms
        self._buffers: dict[tuple[str, int], deque[Record]] = {}
        #: The last timestamp fetched from each partition.
        self._last: dict[tuple[str, int], int] = {}
        #: The next offset to fetch from each partition.
        self._next: dict[tuple[str, int], int] = {}
        self._held_since: float | None = None

    def reset(self, positions: dict[tuple[str, int], int]) -> None:
        """Forget everything: the consumer was sought to ``positions`` (after a reload)."""
        self._buffers = {}
        self._last = {}
        self._next = dict(positions)
        self._held_since = None

    def add(self, records: Iterable[Record]) -> None:
        for record in records:
            key = (record.topic, record.partition)
            self._buffers.setdefault(key, deque()).append(record)
            self._last[key] = record.timestamp
            self._next[key] = record.offset + 1

    def release(self, highwater: Callable[[tuple[str, int]], int | None]) -> list[Record]:
        """The records no later fetch can precede, oldest first (``highwater``: the end of a
        partition as the consumer's last fetch saw it, None if not known yet)."""
        cutoff: float | None = None
        for key, position in self._next.items():
            end = highwater(key)
            if end is None or position < end:  # the broker holds more of it
                last = self._last.get(key)
                if last is None:
                    cutoff = float("-inf")
                    break
                cutoff = last if cutoff is None else min(cutoff, last)
        now = self.clock()
        if cutoff is not None and self._held_since is not None:
            if now - self._held_since >= self.hold_s:
                cutoff = None  # waited long enough for the laggards
        recent = self.wall_ms() - self.grace_ms
        cutoff = recent if cutoff is None else min(cutoff, recent)
        out: list[Record] = []
        for buffer in self._buffers.values():
            while buffer and buffer[0].timestamp <= cutoff:
                out.append(buffer.popleft())
        if not any(buffer and buffer[0].timestamp <= recent for buffer in self._buffers.values()):
            self._held_since = None  # nothing waits for a laggard
        elif out or self._held_since is None:
            self._held_since = now
        out.sort(key=lambda r: (r.timestamp, r.topic, r.partition, r.offset))
        return out

    def __len__(self) -> int:
        return sum(len(buffer) for buffer in self._buffers.values())

    @property
    def holding(self) -> bool:
        """Whether records wait (the feed then looks again soon, not after a long poll)."""
        return any(self._buffers.values())


def records_of(fetched: dict[Any, list[Any]]) -> list[Record]:
    """aiokafka's ``getmany`` answer as :class:`Record` s."""
    return [
        Record(record.timestamp, tp.topic, tp.partition, record.offset, record.value)
        for tp, batch in fetched.items()
        for record in batch
    ]
