"""Where events enter the hub: this process joins the fan-out of every subscribed topic.

The WebSub component is one more client of the process's fan-out hub: one queue joined to every
topic address that has live subscriptions. Whatever arrives is recorded in the database in
batches, one pending delivery per subscription; from there any worker can deliver it.

The queue never disconnects and never conflates, whatever the topic's overflow policy: it is
large (``queue_size``), drained as fast as the database takes writes, and only if the database
falls that far behind are the oldest events dropped (counted and logged). An event is durable
once recorded; before that it lives in this process's memory only, for milliseconds in normal
operation. With several workers, each records every event, so one worker's loss is covered by
the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

from ..events import EncodedEvent
from ..fanout import ClientQueue
from ..runtime import StreamingRuntime
from ..topics import OverflowPolicy
from .repository import IncomingEvent, Repository
from .settings import WebSubSettings

logger = logging.getLogger("fastapi_streaming.websub")

BATCH = 500


class IntakeQueue(ClientQueue):
    """A client queue that gives way only at its bound, and then drops the oldest event."""

    __slots__ = ()

    def put(self, item: EncodedEvent, policy: OverflowPolicy) -> None:
        super().put(item, OverflowPolicy.DROP_OLDEST)


class EventIntake:
    """Joins the topics that have subscriptions and records their events."""

    def __init__(
        self,
        settings: WebSubSettings,
        runtime: StreamingRuntime,
        repo: Repository,
        on_recorded: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.repo = repo
        self.on_recorded = on_recorded
        self.queue = IntakeQueue(settings.queue_size, "websub")
        self.joined: set[str] = set()
        #: When each address was last joined or activated, so a sync that read the database
        #: before a subscription's save (and so does not see it) does not leave it again.
        self._joined_at: dict[str, float] = {}
        #: Addresses with a subscription being activated right now (joined, not saved yet).
        self._activating: Counter[str] = Counter()
        self.recorded = 0
        self._reported_drops = 0
        self._lock = asyncio.Lock()
        #: Set when the server shuts down: from then on no topic is joined again.
        self.closed = False

    async def join(self, address: str) -> None:
        """Receive the events of ``address`` from now on (before a subscription is activated)."""
        async with self._lock:
            if self.closed:
                return
            if address not in self.joined:
                await self.runtime.subscribe(self.queue, address)
                self.joined.add(address)
            self._joined_at[address] = time.monotonic()

    @contextlib.asynccontextmanager
    async def activating(self, address: str) -> AsyncIterator[None]:
        """Join ``address`` for a subscription being activated, and keep it joined while the
        subscription is saved: a sync that reads the database before the save sees no
        subscription there, and must not leave the topic under it."""
        self._activating[address] += 1
        try:
            await self.join(address)
            yield
        finally:
            self._activating[address] -= 1
            if not self._activating[address]:
                del self._activating[address]
            self._joined_at[address] = time.monotonic()

    async def sync(self) -> None:
        """Join topics that gained subscriptions (in any process), leave those that lost all."""
        started = time.monotonic()
        wanted = await self.repo.live_topics()
        for address in sorted(wanted - self.joined):
            try:
                await self.join(address)
            except Exception as exc:  # a topic removed from the code since it was subscribed
                logger.warning("Cannot deliver WebSub events of %s: %s", address, exc)
        async with self._lock:
            for address in sorted(self.joined - wanted):
                if address in self._activating or self._joined_at.get(address, 0.0) >= started:
                    continue  # a subscription is being activated, or was after the read
                self.joined.discard(address)
                self._joined_at.pop(address, None)
                await self.runtime.unsubscribe(self.queue, address)

    async def run(self) -> None:
        """Record what arrives until the queue is closed (the server is shutting down)."""
        queue = self.queue
        while True:
            await queue.wait()
            batch = [item for item in queue.take(BATCH) if isinstance(item, EncodedEvent)]
            if batch:
                await self._record(batch)
            self._report_drops()
            if queue.closed is not None and not queue.items:
                # The server is shutting down: leave, so it need not wait for this queue.
                await self.close()
                return

    async def _record(self, batch: list[EncodedEvent]) -> None:
        incoming = [
            IncomingEvent(topic=item.topic, event_id=item.event.id, body=item.data_json)
            for item in batch
        ]
        delay = 0.05
        while True:
            try:
                await self.repo.record(incoming)
                break
            except Exception as exc:
                # Keep the batch: the queue holds newer events meanwhile, up to its bound.
                logger.warning("Could not record %d WebSub events (%r); retrying", len(batch), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.recorded += len(batch)
        self.on_recorded()

    def _report_drops(self) -> None:
        dropped = self.queue.dropped
        if dropped > self._reported_drops:
            logger.error(
                "WebSub dropped %d events: more than %d were waiting to be recorded",
                dropped - self._reported_drops,
                self.settings.queue_size,
            )
            self._reported_drops = dropped

    async def close(self) -> None:
        """Leave every topic for good (the server is shutting down)."""
        async with self._lock:
            self.closed = True
            await self.runtime.disconnect(self.queue, sorted(self.joined))
            self.joined.clear()
