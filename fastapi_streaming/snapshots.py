"""A client's snapshot of a topic's current rows, then its live events: no gap, no duplicate.

A topic fed from a database table (change data capture) can give a new client the table's
current rows before the live changes. The order of the steps is what makes the boundary exact:

1. the client joins the topic's stream through a :class:`SnapshotGate`, which keeps its live
   events back;
2. only then is the snapshot taken (:meth:`SnapshotSource.open`): every change committed before
   it is in the rows, and every change committed after it reaches the gate, because the client
   was already listening;
3. the rows go to the client (``op: r``), the held events follow, minus those the snapshot
   already holds (the fence: :meth:`ClientSnapshot.covers`, decided from each event's
   ``position`` in the source's log), and the gate steps aside for good once an event is past
   the fence (:meth:`ClientSnapshot.passed`).

The rows are read per client (that is what the client asked for); the live events are still
prepared once for every client, and a client is behind a gate only until its first live event
past the fence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from broadcaster import Event as BrokerMessage

from .errors import MalformedMessage, StreamingError, Unavailable
from .events import EncodedEvent
from .fanout import ClientQueue, CloseReason, Fanout, Prepare, Reply, TopicStream
from .topics import OverflowPolicy, Topic

logger = logging.getLogger("fastapi_streaming")

#: Live events one client's gate keeps while its snapshot is read; past it the client is
#: disconnected (it may ask again) rather than holding memory without bound.
MAX_WAITING = 100_000

SNAPSHOT_FAILED = "snapshot_failed"


class ClientSnapshot(Protocol):
    """One client's snapshot of the rows of one address, open until :meth:`close`."""

    def batches(self) -> AsyncIterator[list[tuple[str, str]]]:
        """The rows as broker messages (channel, CloudEvents JSON), in batches."""
        ...

    def covers(self, position: str | None) -> bool:
        """Whether the change at ``position`` is in the snapshot's rows already."""
        ...

    def passed(self, position: str | None) -> bool:
        """Whether the change at ``position``, and every later one, is after the snapshot."""
        ...

    async def close(self) -> None: ...


class SnapshotSource(Protocol):
    """What a topic with snapshots has: it takes one for the address with ``params``."""

    async def open(self, params: dict[str, Any]) -> ClientSnapshot:
        """Start a snapshot now; raise :class:`~fastapi_streaming.errors.Unavailable` (or an
        error naming the fix) when it cannot be taken."""
        ...


class SnapshotGate:
    """Stands in for one client's queue in a topic stream while its snapshot is delivered."""

    __slots__ = (
        "_passed",
        "_task",
        "policy",
        "queue",
        "snapshot",
        "stream",
        "transport",
        "waiting",
    )

    def __init__(self, queue: ClientQueue, policy: OverflowPolicy) -> None:
        self.queue = queue
        self.policy = policy
        self.transport = queue.transport
        self.snapshot: ClientSnapshot | None = None
        self.stream: TopicStream | None = None
        #: Live events (and signals) held back while the rows are read; None once open.
        self.waiting: list[EncodedEvent | Reply] | None = []
        self._passed = False
        self._task: asyncio.Task[None] | None = None

    # -- the topic stream's side -----------------------------------------------------------

    def put(self, item: EncodedEvent, policy: OverflowPolicy) -> None:
        waiting = self.waiting
        if waiting is None:
            self._forward(item, policy)
        elif len(waiting) < MAX_WAITING:
            waiting.append(item)
        else:
            self.queue.close(
                CloseReason(
                    SNAPSHOT_FAILED,
                    f"more than {MAX_WAITING} changes arrived while the snapshot was read; "
                    "subscribe again, or without a snapshot",
                )
            )

    def put_many(self, items: list[EncodedEvent], policy: OverflowPolicy) -> None:
        for item in items:
            self.put(item, policy)

    def signal(self, notice: Reply) -> None:
        if self.waiting is None:
            self.queue.signal(notice)
        else:
            self.waiting.append(notice)

    def close(self) -> None:
        """The client left: stop reading its snapshot."""
        if self._task is not None:
            self._task.cancel()

    # -- the snapshot's side ---------------------------------------------------------------

    def start(
        self,
        stream: TopicStream,
        snapshot: ClientSnapshot,
        prepare: Callable[[BrokerMessage], Awaitable[EncodedEvent | None]],
    ) -> None:
        """Send the rows in a task of the client's own, then open the gate."""
        self.stream, self.snapshot = stream, snapshot
        self._task = asyncio.create_task(
            self._deliver(prepare), name=f"fastapi-streaming snapshot of {stream.address}"
        )

    async def _deliver(
        self, prepare: Callable[[BrokerMessage], Awaitable[EncodedEvent | None]]
    ) -> None:
        assert self.snapshot is not None
        queue = self.queue
        try:
            async for batch in self.snapshot.batches():
                for channel, message in batch:
                    encoded = await prepare(BrokerMessage(channel, message))
                    if encoded is None:
                        continue
                    if not await self._room():
                        return
                    # Not the topic's policy: conflating or dropping rows would lose them.
                    queue.put(encoded, OverflowPolicy.DISCONNECT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("A client's snapshot failed: %s", exc)
            queue.close(
                CloseReason(
                    SNAPSHOT_FAILED, f"the snapshot could not be read ({exc}); subscribe again"
                )
            )
            return
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.snapshot.close())
        await self._open()

    async def _room(self) -> int:
        """Wait until the client's queue has room; how much (0: the client is gone)."""
        queue = self.queue
        # The rows wait for the client to read (no event to wait on: a queue has none).
        while len(queue) >= queue.maxsize and queue.closed is None:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        return 0 if queue.closed is not None else queue.maxsize - len(queue)

    async def _open(self) -> None:
        """Release the held events, minus those the snapshot holds already, as the client
        makes room for them; then let live events through the fence as they come."""
        waiting = self.waiting
        assert waiting is not None
        while waiting:
            room = await self._room()
            if not room:
                return
            released = waiting[:room]
            del waiting[:room]
            for item in released:
                if isinstance(item, Reply):
                    self.queue.signal(item)
                else:
                    self._forward(item, self.policy)
        self.waiting = None  # nothing held is left: no await since the last check

    def _forward(self, item: EncodedEvent, policy: OverflowPolicy) -> None:
        if self._passed:
            self.queue.put(item, policy)
            return
        assert self.snapshot is not None
        position = item.event.position
        if self.snapshot.covers(position):
            return  # the client has this row from the snapshot
        self.queue.put(item, policy)
        if self.snapshot.passed(position):
            self._passed = True
            self._step_aside()

    def _step_aside(self) -> None:
        """Past the fence: the stream hands this client's events straight to its queue."""
        stream = self.stream
        if stream is None or stream.gates.get(self.queue) is not self:
            return
        del stream.gates[self.queue]
        stream.clients.discard(self)
        stream.clients.add(self.queue)


async def join_with_snapshot(
    fanout: Fanout,
    queue: ClientQueue,
    topic: Topic,
    params: dict[str, Any],
    *,
    address: str,
    prepare: Prepare,
    policy: OverflowPolicy,
) -> None:
    """Subscribe ``queue`` to ``address`` behind a gate, then take the snapshot and start
    sending it; raise (not subscribed) when the topic has none or it cannot be taken."""
    source: SnapshotSource | None = topic.snapshots
    if source is None:
        raise MalformedMessage(
            f"The topic {topic.address} has no snapshot of current rows (only table "
            "topics have one); subscribe without asking for a snapshot."
        )
    gate = SnapshotGate(queue, policy)
    await fanout.join(
        queue,
        address=address,
        channel=topic.channel_for(params),
        prepare=prepare,
        policy=policy,
        template=topic.address,
        gate=gate,
    )
    try:
        opened = await source.open(params)  # after joining: nothing falls in between
    except BaseException as exc:
        await asyncio.shield(fanout.leave(queue, address))
        if isinstance(exc, Exception) and not isinstance(exc, StreamingError):
            logger.warning("Could not take a snapshot of %s: %s", address, exc)
            raise Unavailable(
                f"The snapshot of {address} cannot be taken right now ({exc}); retry shortly.",
                headers={"Retry-After": "1"},
            ) from None
        raise
    stream = fanout.streams[address]
    gate.start(stream, opened, stream.prepare)
