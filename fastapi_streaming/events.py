"""The event envelope, and the encoded event whose frames the transports write.

On the broker an event travels as a CloudEvents 1.0 JSON document (structured mode): the id is
made once, by whoever publishes, so every worker process that receives the event sees the same
id, and a client that reconnects to another worker can say where it stopped. Systems that write
plain JSON into a channel are welcome too: their message is the event's data.

When traces are on, the document also carries the W3C ``traceparent`` and ``tracestate`` of
the span that published it (the CloudEvents distributed tracing extension), so every worker
that fans the event out can link its work to the producer's.

Towards clients an event is encoded once per format and the same bytes go to every client; the
formats belong to the transports (see :meth:`EncodedEvent.frame`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

SPECVERSION = "1.0"
SOURCE = "fastapi-streaming"
EVENT_TYPE = "fastapi_streaming.event"

F = TypeVar("F")


#: Bits of the per-millisecond counter: 12 in ``rand_a`` and 30 at the top of ``rand_b``.
COUNTER_BITS = 42
_LOW_BITS = 30


class EventIds:
    """Time-ordered, globally unique ids: UUID version 7 with a counter (RFC 9562, 6.2 method 1).

    Ids made by one process are strictly increasing, also within one millisecond, so "after
    this id" means "published after this event" for every topic of the process: a client that
    resumes a stream of several topics from the id of one topic's event gets the other topics'
    events of the same millisecond too. Each new millisecond seeds the counter at random with
    its top bit clear (room for 2**41 more ids in that millisecond); if it still runs out, the
    ids borrow the next millisecond, and a clock that steps back does not reorder them either.
    32 random bits end every id, so ids of different processes do not collide.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # server code may publish from threads too
        self._millis = 0
        self._counter = 0

    def __call__(self) -> str:
        with self._lock:
            millis = time.time_ns() // 1_000_000
            if millis > self._millis:
                self._millis = millis
                self._counter = int.from_bytes(os.urandom(6), "big") >> (48 - COUNTER_BITS + 1)
            else:
                self._counter += 1
                if self._counter >> COUNTER_BITS:
                    self._millis += 1
                    self._counter = 0
            millis, counter = self._millis, self._counter
        value = (
            (millis & (2**48 - 1)) << 80
            | 0x7 << 76  # version 7
            | (counter >> _LOW_BITS) << 64
            | 0x2 << 62  # RFC 9562 variant
            | (counter & (2**_LOW_BITS - 1)) << 32
            | int.from_bytes(os.urandom(4), "big")
        )
        return str(uuid.UUID(int=value))


#: The id of every event this process publishes.
new_event_id = EventIds()


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Event:
    """One event of one concrete topic address."""

    id: str
    topic: str
    time: str
    data: Any
    #: The W3C trace context of the span that published the event (distributed tracing
    #: extension of CloudEvents), when traces are on.
    traceparent: str | None = None
    tracestate: str | None = None
    #: Where the event sits in the log of the database it comes from (change data capture),
    #: in that source's own notation; what a client snapshot's fence compares. Travels as the
    #: CloudEvents extension attribute ``sourceposition``.
    position: str | None = None

    @classmethod
    def create(
        cls,
        topic: str,
        data: Any,
        *,
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> Event:
        return cls(
            id=new_event_id(),
            topic=topic,
            time=utc_now(),
            data=data,
            traceparent=traceparent,
            tracestate=tracestate,
        )

    def to_message(self, data_json: bytes | None = None) -> str:
        """Encode as the CloudEvents JSON text that travels on the broker."""
        data = data_json.decode() if data_json is not None else json.dumps(self.data)
        attributes = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": SOURCE,
            "type": EVENT_TYPE,
            "subject": self.topic,
            "time": self.time,
            "datacontenttype": "application/json",
        }
        if self.traceparent is not None:
            attributes["traceparent"] = self.traceparent
            if self.tracestate:
                attributes["tracestate"] = self.tracestate
        if self.position is not None:
            attributes["sourceposition"] = self.position
        head = json.dumps(attributes, separators=(",", ":"))
        return head[:-1] + ',"data":' + data + "}"


class UndecodableMessage(ValueError):
    """A broker message that is not JSON, so no client could read it."""


def decode_message(message: str | bytes, *, topic: str, channel: str) -> Event:
    """Turn a broker message into an :class:`Event`.

    A CloudEvents document keeps its id and time. Any other JSON value is data written by
    another system; its id is derived from the channel and the exact bytes, so that every worker
    process still gives the same event the same id.
    """
    try:
        document = json.loads(message)
    except (ValueError, RecursionError) as exc:
        raise UndecodableMessage(f"message on channel {channel!r} is not JSON: {exc!r}") from None
    if (
        isinstance(document, dict)
        and document.get("specversion") == SPECVERSION
        and "id" in document
        and "data" in document
    ):
        return Event(
            id=str(document["id"]),
            topic=topic,
            time=str(document.get("time") or utc_now()),
            data=document["data"],
            traceparent=_text_or_none(document.get("traceparent")),
            tracestate=_text_or_none(document.get("tracestate")),
            position=_text_or_none(document.get("sourceposition")),
        )
    raw = message.encode() if isinstance(message, str) else message
    digest = hashlib.blake2b(channel.encode() + b"\n" + raw, digest_size=16).hexdigest()
    return Event(id=digest, topic=topic, time=utc_now(), data=document)


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class EncodedEvent:
    """An event after its topic's subscribe handler: its JSON, and its frame in each wire format.

    One instance is shared by every client queue of the topic. A transport writes it with
    :meth:`frame` and an encoder of its own (``sse_frame``, ``ws_text_frame``...): the frame is
    made on first use and then reused for every client, so each format is encoded once per
    event, and a new transport brings its encoders without changing this class.
    """

    __slots__ = ("_frames", "data_json", "event")

    def __init__(self, event: Event, data_json: bytes) -> None:
        self.event = event
        self.data_json = data_json
        self._frames: dict[Callable[[EncodedEvent], Any], Any] = {}

    @property
    def topic(self) -> str:
        return self.event.topic

    def frame(self, encoder: Callable[[EncodedEvent], F]) -> F:
        """This event as ``encoder`` writes it (never None), encoded once and shared by every
        client.
        """
        found: F | None = self._frames.get(encoder)
        if found is None:
            found = self._frames[encoder] = encoder(self)
        return found
