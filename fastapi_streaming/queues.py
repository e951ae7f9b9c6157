"""One client's bounded queue of events and replies, and what the fan-out says to it.

Every connected client has a :class:`ClientQueue`; the fan-out (:mod:`~fastapi_streaming.fanout`)
puts each encoded event into the queue of every client of its topic, and the client's transport
takes everything pending at once. ``put`` never blocks and never grows the queue past its bound:
the topic's :class:`~fastapi_streaming.topics.OverflowPolicy` decides what gives way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import Any, TypeVar

from .events import EncodedEvent
from .owners import Owner
from .topics import OverflowPolicy

#: A frame of a reply, in whatever type its transport writes (text or bytes).
F = TypeVar("F")


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
#: An administrator ended the client's connections (WebSocket close 1008).
DISCONNECTED = "disconnected"


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
        "_repeats",
        "_sent_since_ping",
        "_waiter",
        "closed",
        "delivered",
        "dropped",
        "heartbeat_due",
        "items",
        "maxsize",
        "on_close",
        "owner",
        "transport",
    )

    def __init__(self, maxsize: int, transport: str = "") -> None:
        if maxsize < 1:
            raise ValueError("a client queue must hold at least one event")
        self.maxsize = maxsize
        self.items: list[EncodedEvent | Reply | _Slot] = []
        #: Conflated topics' pending events; created by the first one (most queues never need it).
        self._latest: dict[str, EncodedEvent] | None = None
        #: After a resume: per topic, ids of events the live stream may still bring although
        #: the client has them (see :meth:`replay`); None when there are none (most queues).
        self._repeats: dict[str, Set[str]] | None = None
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
        #: Whom the connection belongs to (None for the server's own consumers: the hub).
        self.owner: Owner | None = None

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
        if self._repeats is not None and self._repeated(item):
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

    def put_many(self, items: list[EncodedEvent], policy: OverflowPolicy) -> None:
        """:meth:`put` each of ``items``, in order, with one wake-up.

        The fan-out hands every client the events that arrived together in one call; when
        they all fit and none needs a look of its own (conflation, a resume's repeats), they
        are added at once.
        """
        if (
            self.closed is None
            and self._repeats is None
            and policy is not OverflowPolicy.LATEST
            and len(self.items) + len(items) <= self.maxsize
        ):
            self.items.extend(items)
            self._wake()
            return
        for item in items:
            self.put(item, policy)

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

    def replay(
        self,
        events: list[EncodedEvent],
        notice: Reply | None = None,
        *,
        topic: str | None = None,
        covered: Set[str] = frozenset(),
    ) -> None:
        """Put missed events (and a notice such as a ``gap``) before everything queued since the
        queue was held (before everything pending, if it is not held).

        Events already pending are not repeated; at most ``maxsize`` events are replayed (the
        newest), so a resume cannot grow the queue past twice its bound.

        ``covered`` holds the ids of ``topic``'s events that the resume accounted for: those
        the client already had and those replayed here. History read from the broker is ahead
        of what this process has delivered, so the live stream may still bring some of them:
        copies queued since the hold are dropped (the replayed ones come in history order), and
        later ones are skipped as they arrive, until the first event of ``topic`` that is not
        covered (the live stream delivers in history order, so none can follow it).
        """
        if topic is not None and covered:
            front = self._front if self._held else 0
            self.items[front:] = [
                item
                for item in self.items[front:]
                if not (
                    isinstance(item, EncodedEvent)
                    and item.topic == topic
                    and item.event.id in covered
                )
            ]
            repeats = self._repeats
            if repeats is None:
                repeats = self._repeats = {}
            repeats[topic] = covered
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

    def _repeated(self, item: EncodedEvent) -> bool:
        """Whether ``item`` is a live copy of an event a resume already accounted for."""
        assert self._repeats is not None
        covered = self._repeats.get(item.topic)
        if covered is None:
            return False
        if item.event.id in covered:
            return True
        del self._repeats[item.topic]  # the live stream is past the history that was read
        if not self._repeats:
            self._repeats = None
        return False

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
