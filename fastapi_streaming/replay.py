"""Resuming a stream: the events a reconnecting client missed, or a clear ``gap`` signal.

A client says where it stopped with the last event id it saw (SSE's ``Last-Event-ID``, or
``last_event_id`` on a WebSocket subscribe). Ids of events published through fastapi-streaming
are UUID version 7 with a counter: ordered by time, and within one process strictly increasing
even within a millisecond, so "after this id" is meaningful on every topic. Events are compared
by their whole id, never by their millisecond alone: a stream of several topics resumed from one
topic's event must get the other topics' events of that same millisecond.

Two sources of history, best first:

1. the broker, for backends that keep it (Redis Streams, NATS JetStream, Kafka): they implement
   :class:`HistoryBackend`, and a client can resume on any process;
2. a bounded in-process buffer of each address's recent events, for the others: best effort,
   since it only holds what this process delivered recently.

When neither reaches back to the client's last event, the client is told with a ``gap`` signal
before the events that could be found: a resume is never silently incomplete.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence

# Re-exported: the protocol lives with the brokers, and callers knew it from here.
from .brokers.extensions import HistoryBackend as HistoryBackend
from .events import EncodedEvent


def uuid7_millis(event_id: str) -> int | None:
    """The creation time of a UUID version 7 id, in Unix milliseconds; None for other ids."""
    try:
        value = uuid.UUID(event_id)
    except ValueError:
        return None
    if value.version != 7:
        return None
    return value.int >> 80


def id_order(event_id: str) -> int | None:
    """A sort key that follows publication order for UUID version 7 ids; None for other ids."""
    try:
        value = uuid.UUID(event_id)
    except ValueError:
        return None
    return value.int if value.version == 7 else None


def events_after(
    events: Sequence[EncodedEvent], last_event_id: str
) -> tuple[list[EncodedEvent], bool]:
    """The events after ``last_event_id``, oldest first, and whether that is surely all of them.

    ``events`` are in the order they were delivered. An exact match of the id is certain.
    Otherwise a time-ordered id is compared with each event's whole id: the later ones are
    returned, and the answer is certain only if ``events`` reaches back to an event at or before
    the client's. Events written by other systems (ids that carry no time) are placed by their
    position: after a later event they are later too; between the client's point and the first
    later event nobody can tell, so the answer is not certain.
    """
    for index, encoded in enumerate(events):
        if encoded.event.id == last_event_id:
            return list(events[index + 1 :]), True
    last = id_order(last_event_id)
    if last is None:
        return [], False
    keys = [id_order(encoded.event.id) for encoded in events]
    boundary = max((i for i, key in enumerate(keys) if key is not None and key <= last), default=-1)
    later: list[EncodedEvent] = []
    seen_later = ambiguous = False
    for index, (encoded, key) in enumerate(zip(events, keys, strict=True)):
        if key is not None and key > last:
            later.append(encoded)
            seen_later = seen_later or index > boundary
        elif key is None and index > boundary:
            if seen_later:
                later.append(encoded)
            else:
                ambiguous = True
    return later, boundary >= 0 and not ambiguous


def events_since(events: Sequence[EncodedEvent], event_id: str | None) -> Sequence[EncodedEvent]:
    """The events after the one with ``event_id``, or all of them when it is not among them.

    A topic stream delivers its events in the order its history holds them, so the events of
    that history after the last one it delivered are those it may still deliver.
    """
    if event_id is not None:
        for index, encoded in enumerate(events):
            if encoded.event.id == event_id:
                return events[index + 1 :]
    return events


class ReplayBuffers:
    """The recent events of the most recently active addresses of this process.

    Bounded twice: ``size`` events per address and ``addresses`` addresses (least recently used
    go first), so memory stays fixed however many topics come and go.
    """

    def __init__(self, size: int = 256, addresses: int = 1024) -> None:
        self.size = size
        self.addresses = addresses
        self._buffers: OrderedDict[str, deque[EncodedEvent]] = OrderedDict()

    def record(self, encoded: EncodedEvent) -> None:
        if self.size <= 0:
            return
        address = encoded.topic
        buffer = self._buffers.get(address)
        if buffer is None:
            buffer = self._buffers[address] = deque(maxlen=self.size)
            if len(self._buffers) > self.addresses:
                self._buffers.popitem(last=False)
        else:
            self._buffers.move_to_end(address)
        buffer.append(encoded)

    def recent(self, address: str) -> Sequence[EncodedEvent]:
        return tuple(self._buffers.get(address, ()))

    def forget(self, address: str) -> None:
        """Drop what ``address`` holds: its stream was interrupted, so the events kept from
        before and those after no longer follow each other, and a resume across the outage
        must not look complete."""
        self._buffers.pop(address, None)


def without_duplicates(
    replayed: Iterable[EncodedEvent], pending_ids: set[str]
) -> list[EncodedEvent]:
    """Replayed events the client's queue does not already hold (in order, each once)."""
    seen = set(pending_ids)
    unique = []
    for encoded in replayed:
        if encoded.event.id not in seen:
            seen.add(encoded.event.id)
            unique.append(encoded)
    return unique
