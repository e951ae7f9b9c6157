"""The per-process fan-out: one broker subscription per channel, one queue per client.

Events flow one way: broker -> :class:`TopicStream` (the topic's subscribe handler runs here,
once per event, and the result is encoded once) -> every client's :class:`ClientQueue` -> the
client's transport. A client that does not read fills only its own bounded queue; what happens
then is its topic's :class:`~fastapi_streaming.topics.OverflowPolicy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from broadcaster import Event as BrokerMessage

from .brokers.connection import BrokerConnection
from .events import EncodedEvent
from .replay import ReplayBuffers
from .topics import OverflowPolicy

logger = logging.getLogger("fastapi_streaming.fanout")

#: Turns a broker message into the encoded event clients receive, or None to drop it.
Prepare = Callable[[BrokerMessage], Awaitable[EncodedEvent | None]]

#: How many broker messages may wait for a slow subscribe handler before the oldest is dropped.
INBOUND_LIMIT = 10_000

#: A frame of a reply, in whatever type its transport writes (text or bytes).
F = TypeVar("F")

#: What a client is told after a broker outage its backend could not bridge.
OUTAGE_DETAIL = "the connection to the broker was lost; events published meanwhile may be missing"

#: In a burst, the fan-out hands the event loop to the transports' writers this often.
YIELD_EVERY = 64


@dataclass(frozen=True)
class CloseReason:
    """Why the fan-out ended a client's stream; transports make it a close code or last frame."""

    code: str
    message: str
    #: Seconds after which the client may come back (a plan's window), when that is known.
    retry_after: int | None = None


SLOW_CLIENT = "slow_client"
SHUTDOWN = "shutdown"
#: The client's access token expired: its connection ends then (WebSocket close 4401).
TOKEN_EXPIRED = "token_expired"


class Reply:
    """A message for one client only, queued in order among its events.

    Either ``text`` a socket made itself (an ``ack`` or ``error``), or a ``signal`` of the core
    (``gap``) with its ``body``, which each transport writes in its own format. One reply may be
    queued for many clients (the ``gap`` after a broker outage): :meth:`frame` encodes it once
    per format.
    """

    __slots__ = ("_frames", "body", "signal", "text")

    def __init__(
        self,
        text: str | None = None,
        *,
        signal: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.text = text
        self.signal = signal
        self.body = body or {}
        self._frames: dict[Callable[[Reply], Any], Any] | None = None  # most replies go to one

    def frame(self, encoder: Callable[[Reply], F]) -> F:
        """This reply as ``encoder`` writes it, encoded once and shared by every client."""
        frames = self._frames
        if frames is None:
            frames = self._frames = {}
        found: F | None = frames.get(encoder)
        if found is None:
            found = frames[encoder] = encoder(self)
        return found


class _Slot:
    """The place in the queue of a conflated topic; its event is looked up when taken."""

    __slots__ = ("topic",)

    def __init__(self, topic: str) -> None:
        self.topic = topic


class ClientQueue:
    """A bounded queue of encoded events for one client connection.

    ``put`` never blocks and never grows past ``maxsize``: the overflow policy of the event's
    topic decides what gives way. The consumer takes everything pending at once, so a transport
    that fell behind catches up with one write instead of many.

    There is one consumer per queue (the client's transport). It waits on a bare future that
    the next ``put`` resolves, not on an :class:`asyncio.Event`: a queue exists per connection,
    and thousands of them are kept cheap in memory and in wake-ups.
    """

    __slots__ = (
        "_front",
        "_held",
        "_latest",
        "_sent_since_ping",
        "_waiter",
        "closed",
        "delivered",
        "dropped",
        "heartbeat_due",
        "items",
        "maxsize",
        "on_close",
        "transport",
    )

    def __init__(self, maxsize: int, transport: str = "") -> None:
        if maxsize < 1:
            raise ValueError("a client queue must hold at least one event")
        self.maxsize = maxsize
        self.items: list[EncodedEvent | Reply | _Slot] = []
        #: Conflated topics' pending events; created by the first one (most queues never need it).
        self._latest: dict[str, EncodedEvent] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.closed: CloseReason | None = None
        self.dropped = 0
        self.delivered = 0
        self._held = 0
        #: While held: how many items were pending when the hold began. What must come first
        #: (an ``ack``, replayed events) goes there: after them, before what came since.
        self._front = 0
        #: Set by the fan-out's heartbeat ticker when the stream has been idle for a while.
        self.heartbeat_due = False
        self._sent_since_ping = False
        #: Called when the queue closes, so a transport stuck writing to a client that does not
        #: read can abandon the write.
        self.on_close: Callable[[CloseReason], None] | None = None
        #: Which transport serves the client (``sse``, ``websocket``, ``websub``), for metrics.
        self.transport = transport

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ready(self) -> bool:
        """Whether the consumer has something to do: items it may take, a heartbeat, the end."""
        return (
            self.closed is not None or self.heartbeat_due or (bool(self.items) and not self._held)
        )

    def put(self, item: EncodedEvent, policy: OverflowPolicy) -> None:
        if self.closed is not None:
            return
        if policy is OverflowPolicy.LATEST:
            self._put_latest(item)
            return
        if len(self.items) >= self.maxsize:
            if policy is OverflowPolicy.DISCONNECT:
                self.dropped += 1
                self.close(
                    CloseReason(
                        SLOW_CLIENT,
                        f"client too slow: more than {self.maxsize} events were waiting",
                    )
                )
                return
            self._drop_oldest()
        self.items.append(item)
        self._wake()

    def _put_latest(self, item: EncodedEvent) -> None:
        """Conflation: at most one event per topic waits, the newest, in the first one's place."""
        latest = self._latest
        if latest is None:
            latest = self._latest = {}
        elif item.topic in latest:
            latest[item.topic] = item  # replaces the one still waiting
            self.dropped += 1
            return
        if len(self.items) >= self.maxsize:
            self._drop_oldest()
        latest[item.topic] = item
        self.items.append(_Slot(item.topic))
        self._wake()

    def reply(self, text: str, *, first: bool = False) -> None:
        """Queue a message for this client alone; it counts against the same bound.

        ``first`` puts it before everything queued since the queue was held (a subscription's
        ``ack`` precedes the events it brought) but after what was pending before: replies
        keep the order of the requests they answer.
        """
        if self.closed is not None:
            return
        if len(self.items) >= self.maxsize:
            self.close(CloseReason(SLOW_CLIENT, "client too slow: it does not read its replies"))
            return
        if first:
            self.items.insert(self._front if self._held else 0, Reply(text))
        else:
            self.items.append(Reply(text))
        self._wake()

    def signal(self, notice: Reply) -> None:
        """Queue a signal of the core (an outage ``gap``) after what is pending.

        It is queued even past ``maxsize`` (a client that does not read is dealt with by its
        events' policy), but never twice in a row: a notice lost to the bound would be a silent
        loss, and one per outage is all a client needs.
        """
        if self.closed is not None:
            return
        items = self.items
        if items and isinstance(items[-1], Reply) and items[-1].body == notice.body:
            return
        items.append(notice)
        self._wake()

    def replay(self, events: list[EncodedEvent], notice: Reply | None = None) -> None:
        """Put missed events (and a notice such as a ``gap``) before everything queued since the
        queue was held (before everything pending, if it is not held).

        Events already pending are not repeated; at most ``maxsize`` events are replayed (the
        newest), so a resume cannot grow the queue past twice its bound.
        """
        pending = {item.event.id for item in self.items if isinstance(item, EncodedEvent)}
        fresh: list[EncodedEvent | Reply | _Slot] = [
            encoded for encoded in events if encoded.event.id not in pending
        ]
        fresh = fresh[-self.maxsize :]
        if notice is not None:
            fresh.insert(0, notice)
        if fresh:
            front = self._front if self._held else 0
            self.items[front:front] = fresh
            self._wake()

    def _drop_oldest(self) -> None:
        oldest = self.items.pop(0)
        if self._front:
            self._front -= 1
        if isinstance(oldest, _Slot) and self._latest is not None:
            del self._latest[oldest.topic]
        self.dropped += 1

    def close(self, reason: CloseReason) -> None:
        """End the stream; the consumer gets what is pending, then sees ``closed``."""
        if self.closed is not None:
            return
        self.closed = reason
        self._wake()
        if self.on_close is not None:
            self.on_close(reason)

    def ping(self) -> None:
        """Called once per heartbeat interval: if nothing was sent since the last call, ask the
        transport to show the client that the stream is alive."""
        if self._sent_since_ping:
            self._sent_since_ping = False
        elif not self.items:
            self.heartbeat_due = True
            self._wake()

    def hold(self) -> None:
        """Keep pending items back (while missed events are looked up) until :meth:`release`."""
        if not self._held:
            self._front = len(self.items)
        self._held += 1

    def release(self) -> None:
        self._held -= 1
        if not self._held and self.items:
            self._wake()

    def take(self, limit: int = 512) -> list[EncodedEvent | Reply]:
        """Everything pending, oldest first (at most ``limit``), without waiting."""
        if self._held and self.closed is None:
            return []
        items = self.items
        # A copy that lives only until it is written, and the queue keeps its own list: a new
        # list per batch would outlive a few young-generation garbage collections and, with
        # thousands of clients, make the full (slow) collections frequent.
        batch: list[Any] = items[:limit]
        del items[:limit]
        if self._latest is not None:
            batch = [self._latest.pop(i.topic) if isinstance(i, _Slot) else i for i in batch]
        if batch:
            self._sent_since_ping = True
            self.delivered += len(batch)
        return batch

    def waiter(self) -> asyncio.Future[None]:
        """A future resolved when the queue becomes :attr:`ready`, for its one consumer.

        Transports await it directly (``if not queue.ready: await queue.waiter()``): a
        coroutine per wait would be one more object per client alive at every garbage
        collection, and with thousands of clients that makes full collections frequent.
        """
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        return waiter

    async def wait(self, at_most: float | None = None) -> bool:
        """Wait until :attr:`ready` (or ``at_most`` seconds passed: then False)."""
        if self.ready:
            return True
        waiter = self.waiter()
        if at_most is None:
            await waiter
            return True
        done, _ = await asyncio.wait((waiter,), timeout=at_most)
        if not done:
            waiter.cancel()
        return bool(done)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)


class Receiver(Protocol):
    """What a topic stream hands its events to: a client's queue, or a gate in front of one."""

    transport: str

    def put(self, item: EncodedEvent, policy: OverflowPolicy) -> None: ...

    def signal(self, notice: Reply) -> None: ...


class Gate(Receiver, Protocol):
    """Stands in for one client's queue among a stream's receivers for a while (a client
    snapshot's fence); :meth:`close` when the client leaves."""

    def close(self) -> None: ...


class TopicStream:
    """The events of one concrete topic address in this process, shared by all its clients."""

    def __init__(
        self,
        address: str,
        channel: str,
        prepare: Prepare,
        policy: OverflowPolicy,
        replay: ReplayBuffers,
        template: str | None = None,
    ) -> None:
        self.address = address
        #: The address template (``/rooms/{room}``): what metrics label the stream with.
        self.template = template or address
        self.channel = channel
        self.policy = policy
        self.clients: set[Receiver] = set()
        #: Clients whose events pass a gate for now, and their gates (which are in ``clients``).
        self.gates: dict[ClientQueue, Gate] = {}
        self.prepare = prepare
        self._replay = replay
        self._inbound: deque[BrokerMessage | None] = deque(maxlen=INBOUND_LIMIT)
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.events = 0
        #: Events handed to clients' queues: ``events`` times the clients there were.
        self.sent = 0
        #: Payload bytes handed to clients' queues (each event's data times its clients).
        self.sent_bytes = 0
        self.skipped = 0
        #: The id of the last event handed to the clients, for the ``gap`` after an outage.
        self.last_event_id: str | None = None

    def receive(self, message: BrokerMessage) -> None:
        """Broker listener callback: queue the message for this stream's worker."""
        if len(self._inbound) == self._inbound.maxlen:
            self.skipped += 1
            logger.warning("Subscribe handler of %s is behind; dropped an event", self.address)
        self._inbound.append(message)
        self._arrived.set()

    def interrupted(self) -> None:
        """Broker connection callback: the channel may have lost messages during an outage.

        Queued among the messages (``None``), so the clients' ``gap`` comes after every event
        received before the outage and before every event received after it.
        """
        self._inbound.append(None)
        self._arrived.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"fastapi-streaming {self.address}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        inbound = self._inbound
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while inbound:
                message = inbound.popleft()
                if message is None:
                    self._announce_gap()
                    continue
                try:
                    encoded = await self.prepare(message)
                except Exception:
                    self.skipped += 1
                    logger.exception("Could not deliver an event of %s", self.address)
                    continue
                if encoded is None:
                    continue
                self.events += 1
                self.last_event_id = encoded.event.id
                self._replay.record(encoded)
                clients = tuple(self.clients)
                self.sent += len(clients)
                self.sent_bytes += len(encoded.data_json) * len(clients)
                for client in clients:
                    client.put(encoded, self.policy)
                if self.events % YIELD_EVERY == 0:
                    # In a burst, let the clients' writers drain their queues before going on.
                    await asyncio.sleep(0)

    def _announce_gap(self) -> None:
        """Tell every client that events may be missing: one notice, shared by all of them."""
        logger.warning("Events of %s may have been lost during a broker outage", self.address)
        self._replay.forget(self.address)  # a resume must not bridge the outage silently
        body = {"topic": self.address, "last_event_id": self.last_event_id}
        notice = Reply(signal="gap", body={**body, "detail": OUTAGE_DETAIL})
        for client in tuple(self.clients):
            client.signal(notice)


class Fanout:
    """All the topic streams of one process, created on the first client, ended with the last."""

    def __init__(self, broker: BrokerConnection, replay: ReplayBuffers | None = None) -> None:
        self.broker = broker
        self.streams: dict[str, TopicStream] = {}
        self.queues: set[ClientQueue] = set()
        self.replay = replay or ReplayBuffers()
        #: Queues of transports that need heartbeats while idle (event streams).
        self.heartbeats: set[ClientQueue] = set()
        #: Events sent by streams that have ended, by address template (for metrics).
        self.ended_sent: Counter[str] = Counter()
        self.ended_sent_bytes: Counter[str] = Counter()
        #: Events dropped for slow clients that have left, by reason (for metrics).
        self.ended_dropped = 0
        broker.interruption_listeners.append(self._interrupted)

    def _interrupted(self, channel: str) -> None:
        for stream in tuple(self.streams.values()):
            if stream.channel == channel:
                stream.interrupted()

    async def run_heartbeats(self, interval: float) -> None:
        """Every ``interval`` seconds, ping the idle streams: one timer for all clients.

        A deadline on every client's wait would cost a timer per wait on the hot path; one
        ticker for the whole process costs nothing between ticks.
        """
        while True:
            await asyncio.sleep(interval)
            for queue in tuple(self.heartbeats):
                queue.ping()

    async def join(
        self,
        queue: ClientQueue,
        *,
        address: str,
        channel: str,
        prepare: Prepare,
        policy: OverflowPolicy,
        template: str | None = None,
        gate: Gate | None = None,
    ) -> None:
        """Start sending the events of ``address`` to ``queue`` (through ``gate``, if given);
        return once subscribed."""
        self.queues.add(queue)
        receiver: Receiver = queue if gate is None else gate
        stream = self.streams.get(address)
        if stream is None:
            stream = TopicStream(address, channel, prepare, policy, self.replay, template)
            self.streams[address] = stream
            stream.clients.add(receiver)
            if gate is not None:
                stream.gates[queue] = gate
            try:
                stream.start()
                await self.broker.subscribe(channel, stream.receive)
            except BaseException as exc:
                # Others waiting on this subscription learn it failed, with the cause.
                failure = RuntimeError(f"could not subscribe to channel {channel!r}: {exc!r}")
                stream.ready.set_exception(failure)
                stream.ready.exception()  # marks it retrieved even if nobody else waits
                await self._end(stream)
                raise
            stream.ready.set_result(None)
        else:
            stream.clients.add(receiver)
            if gate is not None:
                stream.gates[queue] = gate
            await asyncio.shield(stream.ready)

    async def leave(self, queue: ClientQueue, address: str) -> None:
        """Stop sending ``address`` to ``queue``; the last client releases the subscription."""
        stream = self.streams.get(address)
        if stream is None:
            return
        stream.clients.discard(queue)
        gate = stream.gates.pop(queue, None)
        if gate is not None:
            stream.clients.discard(gate)
            gate.close()
        if not stream.clients:
            await self._end(stream)

    async def leave_all(self, queue: ClientQueue, addresses: Any) -> None:
        for address in tuple(addresses):
            await self.leave(queue, address)
        if queue in self.queues:
            self.ended_dropped += queue.dropped
        self.queues.discard(queue)
        self.heartbeats.discard(queue)

    async def _end(self, stream: TopicStream) -> None:
        if self.streams.get(stream.address) is stream:
            del self.streams[stream.address]
            self.ended_sent[stream.template] += stream.sent
            self.ended_sent_bytes[stream.template] += stream.sent_bytes
        await stream.stop()
        if stream.ready.done() and stream.ready.exception() is None:
            await self.broker.unsubscribe(stream.channel, stream.receive)

    def sent_by_template(self) -> tuple[Counter[str], Counter[str]]:
        """Events and payload bytes handed to clients so far, by address template, ended
        streams included."""
        sent, sent_bytes = Counter(self.ended_sent), Counter(self.ended_sent_bytes)
        for stream in self.streams.values():
            sent[stream.template] += stream.sent
            sent_bytes[stream.template] += stream.sent_bytes
        return sent, sent_bytes

    def events_sent(self, address: str) -> int | None:
        """Events handed to the clients of ``address`` so far (None when nobody listens): what
        plans charge, read in batches instead of counted per client."""
        stream = self.streams.get(address)
        return stream.events if stream is not None else None

    def close_all(self, reason: CloseReason) -> None:
        """Ask every client's transport to end its stream (the app is shutting down)."""
        for queue in tuple(self.queues):
            queue.close(reason)

    def stats(self) -> dict[str, Any]:
        return {
            "streams": {
                address: {
                    "clients": len(stream.clients),
                    "events": stream.events,
                    "skipped": stream.skipped,
                    "channel": stream.channel,
                }
                for address, stream in self.streams.items()
            },
            "clients": len(self.queues),
            "delivered": sum(queue.delivered for queue in self.queues),
            "pending": sum(len(queue) for queue in self.queues),
            "dropped": sum(queue.dropped for queue in self.queues),
        }
