"""Usage analytics of a running streaming API: counted in batches, kept in time buckets.

Nothing is counted per event here. The engine keeps what analytics needs as it goes: the
fan-out knows how many events each owned subscription was handed (one subtraction per
subscription, read at a flush), the runtime counts publishes by principal, the limiter counts
refusals by principal, and the WebSub hub counts each batch of successful deliveries by its
subscriptions' principals (a ``deliveries`` source). Every ``flush_interval`` seconds the
recorder takes those counts and adds them to the current bucket of the store in one call (one
Redis pipeline). A worker's last interval of counts shows up at its next flush; a query
flushes this worker first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..stopping import cancel_until_done
from .records import DELIVERED, OTHER, PUBLISHED, THROTTLED, Key, UsageRecord, to_records
from .stores import MemoryUsageStore, UsageStore, open_store, storage_for_broker

if TYPE_CHECKING:
    from ..limits import Limiter
    from ..runtime import StreamingRuntime

logger = logging.getLogger("fastapi_streaming.analytics")

#: What a source of deliveries made outside the fan-out (the WebSub hub) hands over at each
#: flush: the events delivered since the last call, by (principal, plan, address template).
DeliveriesSource = Callable[[], Mapping[tuple[str, str, str], int]]


@dataclass(frozen=True)
class Analytics:
    """How a streaming API keeps usage analytics (``StreamingAPI(analytics=Analytics(...))``).

    Args:
        storage: ``memory://`` (this process) or a Redis URL shared by every worker; by
            default the broker's Redis when the broker is ``redis://`` or
            ``redis-stream://``, else memory.
        bucket_seconds: the width of a time bucket (a minute).
        retention: seconds of buckets kept (a day).
        flush_interval: seconds between two flushes of this worker's counts to the storage.
        max_principals: distinct principals one worker counts per bucket; more are counted
            as ``(other)``, so a flood of anonymous addresses cannot grow the storage
            without bound. Topics are address templates, bounded by the declared topics.
        namespace: prefixes the storage's keys, so several APIs can share one Redis.
    """

    storage: str | None = None
    bucket_seconds: int = 60
    retention: int = 24 * 3600
    flush_interval: float = 5.0
    max_principals: int = 1000
    namespace: str = "fastapi-streaming"

    def __post_init__(self) -> None:
        if self.bucket_seconds < 1 or self.retention < self.bucket_seconds:
            raise ValueError(
                "Analytics needs bucket_seconds >= 1 and a retention of at least one bucket."
            )


def _time(value: datetime | float | None, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


class UsageRecorder:
    """Takes this worker's counts into time buckets, and answers usage queries."""

    def __init__(self, settings: Analytics, broker_url: str) -> None:
        self.settings = settings
        self.storage_url = settings.storage or storage_for_broker(broker_url)
        self._store: UsageStore | None = None
        self._runtime: StreamingRuntime | None = None
        self._limiter: Limiter | None = None
        self._deliveries: Sequence[DeliveriesSource] = ()
        self._principals: dict[int, set[str]] = {}
        #: Counts taken but not stored yet (the storage was unreachable): kept for the next try.
        self._unsaved: dict[int, Counter[Key]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.clock: Callable[[], float] = time.time

    @property
    def store(self) -> UsageStore:
        """The storage, opened on first use (and again after :meth:`stop` closed it)."""
        if self._store is None:
            settings = self.settings
            self._store = open_store(
                self.storage_url,
                namespace=settings.namespace,
                retention_seconds=settings.retention,
                bucket_seconds=settings.bucket_seconds,
            )
        return self._store

    # -- running ------------------------------------------------------------------------------

    def start(
        self,
        runtime: StreamingRuntime,
        limiter: Limiter | None,
        deliveries: Sequence[DeliveriesSource] = (),
    ) -> None:
        """Count from ``runtime``, ``limiter`` and ``deliveries`` (what the WebSub hub
        delivered) until :meth:`stop`."""
        self.store  # noqa: B018 - fail at startup on a bad storage URL, not on first use
        self._runtime, self._limiter, self._deliveries = runtime, limiter, tuple(deliveries)
        runtime.fanout.usage.tracking = True
        if limiter is not None:
            limiter.track_principals = True
        self._task = asyncio.create_task(self._run(), name="fastapi-streaming analytics")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_until_done([self._task])
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()
        self._runtime = self._limiter = None
        self._deliveries = ()
        if self._store is not None and not isinstance(self._store, MemoryUsageStore):
            store, self._store = self._store, None
            await store.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flush_interval)
            try:
                await self.flush()
            except Exception:
                logger.warning("Could not store usage analytics; will retry", exc_info=True)

    # -- counting ----------------------------------------------------------------------------

    def bucket(self, at: float | None = None) -> int:
        return int((self.clock() if at is None else at) // self.settings.bucket_seconds)

    def _principal(self, bucket: int, principal: str) -> str:
        """The principal, or ``(other)`` past the bucket's ``max_principals``."""
        seen = self._principals.get(bucket)
        if seen is None:
            self._principals = {b: s for b, s in self._principals.items() if b >= bucket - 1}
            seen = self._principals[bucket] = set()
        if principal in seen:
            return principal
        if len(seen) >= self.settings.max_principals:
            return OTHER
        seen.add(principal)
        return principal

    def take(self) -> Counter[Key]:
        """This worker's counts since the last take, as (principal, plan, topic, kind)."""
        counts: Counter[Key] = Counter()
        bucket = self.bucket()
        runtime, limiter = self._runtime, self._limiter
        if runtime is not None:
            for (principal, plan, topic), n in runtime.fanout.take_delivered().items():
                if n:
                    counts[(self._principal(bucket, principal), plan, topic, DELIVERED)] += n
            published, runtime.published_by = runtime.published_by, Counter()
            for (principal, plan, topic), n in published.items():
                counts[(self._principal(bucket, principal), plan, topic, PUBLISHED)] += n
        for source in self._deliveries:
            for (principal, plan, topic), n in source().items():
                if n:
                    counts[(self._principal(bucket, principal), plan, topic, DELIVERED)] += n
        if limiter is not None:
            throttled, limiter.throttled_by = limiter.throttled_by, Counter()
            for (principal, plan, _limit), n in throttled.items():
                counts[(self._principal(bucket, principal), plan, "", THROTTLED)] += n
        return counts

    async def flush(self) -> None:
        """Store what was counted since the last flush: one call to the storage."""
        async with self._lock:
            counts = self.take()
            if counts:
                self._unsaved.setdefault(self.bucket(), Counter()).update(counts)
            if not self._unsaved:
                return
            pending, self._unsaved = self._unsaved, {}
            try:
                await self.store.add(pending)
            except BaseException:
                # Kept for the next flush, unless it has fallen out of the retention by then.
                oldest = self.bucket() - self.settings.retention // self.settings.bucket_seconds
                for bucket, values in pending.items():
                    if bucket > oldest:
                        self._unsaved.setdefault(bucket, Counter()).update(values)
                raise

    # -- asking --------------------------------------------------------------------------------

    async def query(
        self,
        *,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        principal: str | None = None,
        plan: str | None = None,
        topic: str | None = None,
    ) -> list[UsageRecord]:
        """Usage per bucket, principal, plan and topic between ``since`` (default: the
        retention's start) and ``until`` (default: now), oldest first; ``principal``,
        ``plan`` and ``topic`` (an address template) narrow it down.

        This worker's counts are flushed first; other workers' reach the storage within
        their ``flush_interval``.
        """
        if self._runtime is not None:
            await self.flush()
        now = self.clock()
        first = self.bucket(_time(since, now - self.settings.retention))
        last = self.bucket(_time(until, now))
        buckets = await self.store.read(first, last)

        def matches(key: Key) -> bool:
            return (
                (principal is None or key[0] == principal)
                and (plan is None or key[1] == plan)
                and (topic is None or key[2] == topic)
            )

        return to_records(buckets, self.settings.bucket_seconds, matches)
