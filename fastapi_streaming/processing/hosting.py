"""What the embedded engine needs from a broker to give a derived topic one owner: a lease,
and, where the broker keeps history, a feed that replays the sources from a checkpoint.

:class:`DerivedTopicBackend` is the extension point: a broker backend (a plugin's, such as
NATS JetStream) that implements its two methods hosts single-owner derived topics itself, and
the engine never needs to know the broker. The built-in brokers go through the same protocol
(:class:`BuiltinHost`): ``memory://`` (one process, always the owner), ``redis://`` (a lease,
live pattern subscriptions) and ``redis-stream://`` (a lease, and
:class:`~.stream_feed.StreamFeed`).

Kafka (a consumer group elects the owner) and key partitions on Redis Streams (a consumer group
shares them) elect owners in other ways: :mod:`.runner` runs those itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit

from .lease import Lease, RedisLease, lease_for, redis_url
from .stream_feed import MAXLEN, Feed, StreamFeed

STREAM_SCHEMES = ("redis-stream", "rediss-stream")


@runtime_checkable
class DerivedTopicBackend(Protocol):
    """A broker backend that elects the owner of a derived topic, and feeds it from
    checkpoints when the broker keeps history.

    The engine calls :meth:`derived_topic_lease` once per derived topic when the API starts,
    and :meth:`derived_topic_feed` each time this process becomes the owner; it closes the
    feed when it stops owning, and the lease when the API stops. The objects returned talk to
    the broker on connections of their own (the backend's connection stays the subscribers').
    """

    def derived_topic_lease(self, name: str, ttl_ms: int) -> Lease:
        """A lease on ``name`` (the derived topic's channel template) lasting ``ttl_ms``
        unless renewed, held by at most one process of the deployment at a time."""
        ...

    def derived_topic_feed(
        self, lease: Lease, patterns: Sequence[str], accepts: Callable[[str], bool]
    ) -> Feed | None:
        """The feed of the owner holding ``lease``: the messages of the channels matching the
        glob ``patterns`` that ``accepts`` takes, from the last checkpoint on, and a commit of
        outputs and checkpoint that fails (:class:`~.stream_feed.LostLease`) once another
        process owns the topic. None on a broker without history: the owner then reads live
        through :class:`~fastapi_streaming.brokers.extensions.PatternSubscription`, and a
        failover loses the open windows.
        """
        ...


class BuiltinHost:
    """The built-in brokers' leases and feeds (``memory://``, ``redis://``, ``redis-stream://``)."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self.streams = urlsplit(broker_url).scheme in STREAM_SCHEMES

    def derived_topic_lease(self, name: str, ttl_ms: int) -> Lease:
        return lease_for(self.broker_url, name, ttl_ms)

    def derived_topic_feed(
        self, lease: Lease, patterns: Sequence[str], accepts: Callable[[str], bool]
    ) -> Feed | None:
        if not self.streams:
            return None
        assert isinstance(lease, RedisLease)
        return StreamFeed(
            redis_url(self.broker_url),
            lease,
            list(patterns),
            accepts=accepts,
            maxlen=stream_maxlen(self.broker_url),
        )


def host_for(broker_url: str, backend: object) -> DerivedTopicBackend:
    """The backend itself when it hosts derived topics, else the built-in brokers' host (whose
    lease refuses a broker it does not know, saying what to use)."""
    if isinstance(backend, DerivedTopicBackend):
        return backend
    return BuiltinHost(broker_url)


def stream_maxlen(broker_url: str) -> int:
    """The ``maxlen`` option of a ``redis-stream://`` URL (what its backend trims streams to)."""
    options = dict(parse_qsl(urlsplit(broker_url).query))
    try:
        return max(int(options.get("maxlen", MAXLEN)), 0)
    except ValueError:
        return MAXLEN
