"""The optional extensions of a broker backend, beyond broadcaster's six methods.

A backend that implements one of these protocols gets more out of fastapi-streaming; one that
does not still works. All are checked with ``isinstance`` (the protocols are runtime
checkable), so a plugin's backend only needs the attribute or method, not a base class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from broadcaster import Event as BrokerMessage


@runtime_checkable
class DirectDelivery(Protocol):
    """An in-process backend that hands each message over in the publisher's own step.

    The broker connection sets ``deliver`` to its dispatcher when it connects, and then runs
    no listener task: the backend calls ``deliver(message)`` synchronously for every message of
    a subscribed channel instead of queueing it for ``next_published()``. Only a backend whose
    publish and delivery happen in one process can do this (``memory://``).
    """

    deliver: Callable[[BrokerMessage], None] | None


@runtime_checkable
class PushDelivery(Protocol):
    """A networked backend whose own reader hands each message over as soon as it is read.

    Queueing messages for ``next_published()`` costs every event two more trips through the
    event loop (the backend's reader puts it on a queue, the connection's listener task takes
    it off) and splits what arrived together from the broker over several of them, so every
    client's writer wakes more often than it has to. The broker connection sets ``push`` to its
    dispatcher when it connects; the backend then calls ``push(message)`` synchronously from
    its reader for every message of a subscribed channel, and everything read from one network
    read reaches the topics before any of them runs: one wake-up per client per batch.
    ``next_published()`` still reports a lost connection (the listener task waits on it for
    nothing else).
    """

    push: Callable[[BrokerMessage], None] | None


@runtime_checkable
class ContinuingBackend(Protocol):
    """A broker backend that, subscribed again after a lost connection, goes on reading each
    channel where the previous connection stopped, so nothing published meanwhile is missed.

    After a reconnection, the broker connection asks ``continued(channel)`` for each channel it
    subscribed again. On a channel the backend does not vouch for (False, or a backend without
    this method, such as pub/sub ones that keep nothing), the clients are told with a ``gap``
    signal that events may have been missed during the outage.
    """

    def continued(self, channel: str) -> bool:
        """Whether the last ``subscribe(channel)`` continued from where the previous connection
        stopped reading, with nothing lost in between (not trimmed, not lost by the broker)."""
        ...


@runtime_checkable
class HistoryBackend(Protocol):
    """A broker backend that can read back what was published on a channel.

    With it, a client that reconnects with ``Last-Event-ID`` to any worker process gets the
    events it missed from the broker; without it, only from the recent events this process
    delivered itself (and a ``gap`` signal when those cannot be complete).
    """

    async def history(self, channel: str, since_ms: int) -> tuple[list[BrokerMessage], bool]:
        """Messages of ``channel`` stored at or after ``since_ms`` (Unix time in milliseconds).

        The flag says whether the broker still holds everything since then (False when its
        retention already dropped some of it).
        """
        ...


@runtime_checkable
class PatternSubscription(Protocol):
    """A backend that delivers the messages of every channel matching a glob pattern.

    Derived topics read all the concrete channels of a source topic (``clicks.*`` for
    ``/clicks/{page}``) without knowing them in advance. ``deliver`` is called with each
    matching message, in the backend's own task; it must not block.
    """

    async def subscribe_pattern(
        self, pattern: str, deliver: Callable[[BrokerMessage], None]
    ) -> None: ...

    async def unsubscribe_pattern(
        self, pattern: str, deliver: Callable[[BrokerMessage], None]
    ) -> None: ...


@runtime_checkable
class PingableBackend(Protocol):
    """A broker backend that can ask its broker for an answer.

    ``GET /streams/health`` calls ``ping()`` (with a timeout): with no channel subscribed,
    nothing else notices that the broker went away. Without it, health trusts the listener.
    """

    async def ping(self) -> None:
        """Return once the broker answered; raise if it cannot be reached."""
        ...


@runtime_checkable
class BacklogBackend(Protocol):
    """A broker backend that keeps messages until read (a log: Redis Streams, Kafka), and can
    say how many of them this process has not read yet.

    Metrics report it as ``streaming_broker_backlog``: how far behind the broker this
    process's consumer is. Pub/sub backends keep nothing, so they have no backlog to report
    (their lag shows in the time from publish to fan-out).
    """

    async def backlog(self) -> dict[str, int]:
        """Messages stored on each subscribed channel after this process's position."""
        ...


__all__ = [
    "BacklogBackend",
    "ContinuingBackend",
    "DirectDelivery",
    "HistoryBackend",
    "PatternSubscription",
    "PingableBackend",
    "PushDelivery",
]
