"""Resuming a stream: the events a reconnecting client missed, or a clear ``gap`` signal.

A client says where it stopped with the last event id it saw (SSE's ``Last-Event-ID``, or
``last_event_id`` on a WebSocket subscribe). Ids of events published through fastapi-streaming
are UUID version 7, ordered by time, so "after this id" is meaningful on every topic and in every
process.

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


def events_after(
    events: Sequence[EncodedEvent], last_event_id: str
) -> tuple[list[EncodedEvent], bool]:
    """The events after ``last_event_id``, oldest first, and whether that is surely all of them.

    An exact match of the id is certain. Otherwise, for a time-ordered id, the events published
    later are certain only if ``events`` reaches back to before that time.
    """
    for index, encoded in enumerate(events):
        if encoded.event.id == last_event_id:
            return list(events[index + 1 :]), True
    since = uuid7_millis(last_event_id)
    if since is None:
        return [], False
    later = [e for e in events if (uuid7_millis(e.event.id) or 0) > since]
    oldest = next((uuid7_millis(e.event.id) for e in events), None)
    return later, oldest is not None and oldest <= since


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
