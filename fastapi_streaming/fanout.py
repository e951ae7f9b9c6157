"""The per-process fan-out: one broker subscription per channel, one queue per client.

Events flow one way: broker -> :class:`TopicStream` (the topic's subscribe handler runs here,
once per event, and the result is encoded once) -> every client's
:class:`~fastapi_streaming.queues.ClientQueue` -> the client's transport. A client that does not
read fills only its own bounded queue; what happens then is its topic's
:class:`~fastapi_streaming.topics.OverflowPolicy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from broadcaster import Event as BrokerMessage

from .brokers.connection import BrokerConnection
from .events import EncodedEvent
from .owners import OwnerUsage
from .queues import DISCONNECTED as DISCONNECTED

# The client queues and what the fan-out says to them; importers knew them from here.
from .queues import SHUTDOWN as SHUTDOWN
from .queues import SLOW_CLIENT as SLOW_CLIENT
from .queues import TOKEN_EXPIRED as TOKEN_EXPIRED
from .queues import ClientQueue as ClientQueue
from .queues import CloseReason as CloseReason
from .queues import Reply as Reply
from .replay import ReplayBuffers
from .topics import OverflowPolicy

if TYPE_CHECKING:
    from .tracing import Tracing

logger = logging.getLogger("fastapi_streaming.fanout")

#: Turns a broker message into the encoded event clients receive, or None to drop it.
Prepare = Callable[[BrokerMessage], Awaitable[EncodedEvent | None]]

#: How many broker messages may wait for a slow subscribe handler before the oldest is dropped.
INBOUND_LIMIT = 10_000

#: What a client is told after a broker outage its backend could not bridge.
OUTAGE_DETAIL = "the connection to the broker was lost; events published meanwhile may be missing"

#: While more events keep coming, the fan-out waits up to this many more turns, or up to
#: ``LINGER_SECONDS``, whichever is longer, before handing out what it has.
LINGER_TURNS = 4
#: Far longer than a round trip to a healthy broker; short enough that a stuck publish, or a
#: stream that never pauses, does not hold the clients' events back.
LINGER_SECONDS = 0.01

#: In a burst, the fan-out hands events out and the event loop to the transports' writers
#: this often (in events).
YIELD_EVERY = 64


class Receiver(Protocol):
    """What a topic stream hands its events to: a client's queue, or a gate in front of one."""

    transport: str

    def put(self, item: EncodedEvent, policy: OverflowPolicy) -> None: ...

    def put_many(self, items: list[EncodedEvent], policy: OverflowPolicy) -> None:
        """``put`` each of ``items`` in order (the caller keeps the list: copy, don't hold)."""
        ...

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
        tracing: Tracing | None = None,
        publishing: Mapping[str, int] | None = None,
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
        #: Prepared events not yet handed out, and the timer that hands them out at the latest.
        self._pending: list[EncodedEvent] = []
        self._pending_deadline: asyncio.TimerHandle | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.events = 0
        #: Events handed to clients' queues: ``events`` times the clients there were.
        self.sent = 0
        #: Payload bytes handed to clients' queues (each event's data times its clients).
        self.sent_bytes = 0
        self.skipped = 0
        #: The id of the last event handed to the clients, for the ``gap`` after an outage.
        self.last_event_id: str | None = None
        #: The envelope time of the last event handed to the clients, and when (Unix time):
        #: what metrics turn into the lag from publish to fan-out, once per scrape.
        self.last_event_time: str | None = None
        self.last_fanned_out = 0.0
        #: Makes a span per event when traces are on.
        self.tracing = tracing
        #: This process's publishes on their way to the broker, by channel.
        self.publishing: Mapping[str, int] = publishing if publishing is not None else {}

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
        if self._pending_deadline is not None:
            self._pending_deadline.cancel()
            self._pending_deadline = None

    async def _run(self) -> None:
        inbound = self._inbound
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            arrived = len(inbound)
            # One more turn of the event loop before handing events out: what the broker's
            # next read (or the next publishes) brings meanwhile reaches each client in the
            # same write. On a loop busy writing to every client, a turn lasts milliseconds and
            # this halves the writes per event (pub/sub brokers deliver a few events per
            # turn, every turn); on an idle loop it costs microseconds.
            await asyncio.sleep(0)
            # While more keeps coming, wait a little longer: the clients then get it all in one
            # write each. Isolated events, and a loop with nothing else to do, wait for nothing
            # more.
            waited, since = 0, loop.time()
            while self._more_coming(arrived, waited, loop.time() - since):
                arrived = len(inbound)
                waited += 1
                await asyncio.sleep(0)
            self._arrived.clear()
            await self._deliver_inbound(loop)

    async def _deliver_inbound(self, loop: asyncio.AbstractEventLoop) -> None:
        """Prepare what arrived, and hand it to the clients a batch at a time.

        Each client gets a batch in one call: with a thousand clients, a call per client and
        per event made handing a burst out take longer than writing it to them. A batch goes
        out once ``YIELD_EVERY`` events are prepared, and at the latest ``LINGER_SECONDS``
        after its first event was (see :meth:`_hold`); then the clients' writers get the
        event loop before the fan-out goes on.
        """
        inbound = self._inbound
        prepared, since = 0, loop.time()
        while inbound:
            message = inbound.popleft()
            if message is None:
                self._hand_out_pending()  # the events from before the outage come first
                self._announce_gap()
                continue
            try:
                if self.tracing is None:
                    encoded = await self.prepare(message)
                    if encoded is not None:
                        self._hold(encoded, loop)
                else:
                    await self._traced(self.tracing, message)
            except Exception:
                self.skipped += 1
                logger.exception("Could not deliver an event of %s", self.address)
                continue
            prepared += 1
            if prepared >= YIELD_EVERY or loop.time() - since >= LINGER_SECONDS:
                self._hand_out_pending()
                # In a burst, let the clients' writers drain their queues before going on.
                await asyncio.sleep(0)
                prepared, since = 0, loop.time()
        self._hand_out_pending()

    def _hold(self, encoded: EncodedEvent, loop: asyncio.AbstractEventLoop) -> None:
        """Keep a prepared event for the next batch.

        The first event of a batch starts a timer: if the subscribe handler then waits for a
        while on one event (a lookup, a thread), what was prepared before it goes out when the
        timer fires instead of waiting for it.
        """
        self._pending.append(encoded)
        if self._pending_deadline is None:
            self._pending_deadline = loop.call_later(LINGER_SECONDS, self._hand_out_pending)

    def _hand_out_pending(self) -> None:
        """Hand out the events kept by :meth:`_hold`, if any."""
        if self._pending_deadline is not None:
            self._pending_deadline.cancel()
            self._pending_deadline = None
        batch, self._pending = self._pending, []
        try:
            self._hand_out(batch)
        except Exception:
            self.skipped += len(batch)
            logger.exception("Could not deliver events of %s", self.address)

    def _more_coming(self, arrived: int, waited: int, waiting: float) -> bool:
        """Whether to wait one more turn before handing out the events that arrived.

        More is coming while every turn brings some (a stream is passing, from publishers of
        this process or from the broker) or while a publish of this process to the channel is
        on its way back from the broker (it will come within a round trip). Then the fan-out
        waits up to ``LINGER_TURNS`` turns or ``LINGER_SECONDS``, whichever is longer: on a
        busy loop a broker's round trip outlasts a few turns, and HTTP publishers (answered
        once the broker acknowledged, one request at a time) keep events on their way all
        along; counting turns alone handed them out in more, smaller writes to every client
        than ``memory://``, whose publishes arrive in the turn they are made.
        """
        coming = len(self._inbound) > arrived or self.channel in self.publishing
        return coming and (waited < LINGER_TURNS or waiting < LINGER_SECONDS)

    async def _traced(self, tracing: Tracing, message: BrokerMessage) -> None:
        """Prepare and fan out one event inside its delivery span: one span per event in this
        process, however many clients it goes to."""
        with tracing.delivery(
            template=self.template, address=self.address, channel=self.channel, message=message
        ) as span:
            encoded = await self.prepare(message)
            if encoded is not None:
                tracing.fanned_out(span, encoded.event.id, self._hand_out([encoded]))

    def _hand_out(self, batch: list[EncodedEvent]) -> int:
        """Hand prepared events, in order, to every client's queue, in one call per client;
        return how many clients there were."""
        if not batch:
            return 0
        for encoded in batch:
            self._replay.record(encoded)
        last = batch[-1].event
        self.events += len(batch)
        self.last_event_id = last.id
        self.last_event_time = last.time
        self.last_fanned_out = time.time()
        clients = tuple(self.clients)
        self.sent += len(clients) * len(batch)
        self.sent_bytes += sum(len(encoded.data_json) for encoded in batch) * len(clients)
        policy = self.policy
        if len(batch) == 1:
            encoded = batch[0]
            for client in clients:
                client.put(encoded, policy)
        else:
            for client in clients:
                client.put_many(batch, policy)
        return len(clients)

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
        #: Makes the delivery spans of the topic streams when traces are on.
        self.tracing: Tracing | None = None
        #: Events handed to each owner's subscriptions, while usage analytics take them.
        self.usage = OwnerUsage()
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

    def connect(self, queue: ClientQueue) -> None:
        """Count a connection from its start, subscribed or not (a socket that only publishes)."""
        self.queues.add(queue)

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
            stream = TopicStream(
                address,
                channel,
                prepare,
                policy,
                self.replay,
                template,
                self.tracing,
                publishing=self.broker.publishing,
            )
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
        if queue.owner is not None and self.usage.tracking:
            self.usage.joined(queue, address, stream.events, queue.owner)

    async def leave(self, queue: ClientQueue, address: str) -> None:
        """Stop sending ``address`` to ``queue``; the last client releases the subscription."""
        stream = self.streams.get(address)
        if stream is None:
            return
        if queue.owner is not None:
            self.usage.left(queue, address, stream.template, stream.events)
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

    def take_delivered(self) -> Counter[tuple[str, str, str]]:
        """Events handed to owned connections since the last call, by (principal, plan,
        address template): see :class:`~fastapi_streaming.owners.OwnerUsage`."""
        return self.usage.take(
            lambda address: (
                (stream.template, stream.events)
                if (stream := self.streams.get(address)) is not None
                else None
            )
        )

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
