"""Running every derived topic of a streaming API, each in exactly one process.

:class:`Processing` is made when the API starts. It checks that every source exists (they may
be declared after the derived topic, or on a router included later, so this is the first moment
all are known), then, for each derived topic, keeps trying to take its lease; the process that
holds it runs the topic's :class:`~.pipeline.Pipeline`, renews the lease every third of its
lifetime, and stops computing at once if a renewal fails. When the owner dies its lease expires
and another process takes over within a lease lifetime.

The lease, and the feed an owner reads its sources from, come from the broker
(:mod:`.hosting`): a plugin's backend provides its own, the built-in brokers theirs. What a
takeover loses depends on the broker. On ``redis-stream://`` nothing: owners read the sources'
history from a checkpoint and commit output and checkpoint atomically (:mod:`.stream_feed`). On
``redis://`` (pub/sub) the new owner starts from the events published after it took over, so
the windows open at that moment miss what the old owner had folded in.

A derived topic declared with ``partitions=N`` on ``redis-stream://`` has no single owner: its
key partitions are shared among the processes through a consumer group
(:mod:`.partitions`, :mod:`.scaleout`), each partition with its own checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from ..brokers.extensions import PatternSubscription
from ..runtime import StreamingRuntime
from ..stopping import cancel_until_done
from ..topics import TopicRegistry
from .hosting import BuiltinHost, host_for, stream_maxlen
from .lease import DEFAULT_TTL_MS, Lease, redis_url
from .partitions import PartitionClaim, PartitionGroup
from .pipeline import Pipeline
from .scaleout import PartitionedOwner
from .sources import channel_pattern
from .stream_feed import Feed, StreamDirectory, StreamFeed

logger = logging.getLogger("fastapi_streaming.processing")


class Processing:
    """The derived topics of one running API: their pipelines, leases and owner loops."""

    def __init__(
        self,
        topics: TopicRegistry,
        runtime: StreamingRuntime,
        *,
        broker_url: str,
        lease_ttl_ms: int = DEFAULT_TTL_MS,
    ) -> None:
        self.runtime = runtime
        #: The pipeline of every derived topic, by address (running or not).
        self.pipelines = {
            topic.address: Pipeline(topic, topics, runtime)
            for topic in topics
            if topic.derivation is not None
        }
        scheme = broker_url.partition(":")[0]
        #: On Redis Streams the owners replay from checkpoints and commit atomically.
        self.streams = scheme in ("redis-stream", "rediss-stream")
        #: On Kafka a consumer group elects the owner, which replays from checkpoints.
        self.kafka = scheme == "kafka"
        self.broker_url = broker_url
        #: Where single owners get their leases and feeds: the backend's own, or built in.
        self.host = host_for(broker_url, runtime.broker.backend)
        hosted = not isinstance(self.host, BuiltinHost)
        pattern_capable = isinstance(runtime.broker.backend, PatternSubscription)
        if self.pipelines and not (pattern_capable or self.streams or self.kafka or hosted):
            raise RuntimeError(
                f"Derived topics ({', '.join(self.pipelines)}) read every channel of their "
                f"sources, and the broker {runtime.broker.url_for_display} cannot subscribe to "
                "channel patterns yet: use memory://, redis://, redis-stream://, kafka://, "
                "nats://, amqp:// or mqtt://."
            )
        partitioned = [
            address
            for address, pipeline in self.pipelines.items()
            if pipeline.derivation.partitions > 1
        ]
        if partitioned and not (self.streams or self.kafka) and scheme != "memory":
            raise RuntimeError(
                f"Derived topics {partitioned} are split into key partitions, which the "
                "processes share through a consumer group with checkpoints: only "
                "redis-stream:// and kafka:// do that so far, not the broker "
                f"{runtime.broker.url_for_display}. Use redis-stream:// or kafka:// (or "
                "memory:// in one process), or leave partitions=1."
            )
        self.lease_ttl_ms = lease_ttl_ms
        #: Partitioned derived topics (on Redis Streams), shared among the processes.
        self.partitioned = partitioned if self.streams else []
        self.leases: dict[str, Lease] = {
            address: self.host.derived_topic_lease(pipeline.topic.channel or address, lease_ttl_ms)
            for address, pipeline in self.pipelines.items()
            if address not in self.partitioned and not self.kafka
        }
        #: This process's share of each partitioned derived topic, once started.
        self.partition_owners: dict[str, PartitionedOwner] = {}
        self._directory: StreamDirectory | None = None
        self._stopping = False
        #: On Kafka: every pipeline this process runs (one per key partition if split).
        self._kafka_pipelines: list[Pipeline] = []
        #: The derived topics this process computes right now.
        self.owned: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Try each lease once now, so that a process that owns a derived topic computes it
        from the moment the API runs (a startup emit is not missed); then keep trying.
        """
        for address, lease in self.leases.items():
            held = await self._try(address, lease.acquire)
            if held:
                await self._begin(address)
            self._tasks.append(
                asyncio.create_task(
                    self._own(address, held), name=f"fastapi-streaming owner {address}"
                )
            )
        if self.partitioned:
            await self._start_partitioned()
        if self.kafka:
            await self._start_kafka()

    async def _start_kafka(self) -> None:
        """Every process runs every derived topic's pipeline on a Kafka feed; the consumer
        group gives the sources to one of them, and the others' feeds wait."""
        from .kafka_assignor import Assignment  # only with the kafka extra
        from .kafka_feed import KafkaFeed

        servers = urlsplit(self.broker_url).netloc.rpartition("@")[2]
        token = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        for address, template in self.pipelines.items():
            count = template.derivation.partitions
            parts: list[int | None] = list(range(count)) if count > 1 else [None]
            for partition in parts:
                pipeline = template if partition is None else self._pipeline_maker(template)()
                assignment = Assignment(token, partition, count, _partition_finder(pipeline, count))
                feed = KafkaFeed(
                    servers,
                    pipeline.topic.channel or address,
                    [channel_pattern(source) for source in pipeline.sources],
                    accepts=_source_channels(pipeline),
                    assignment=assignment,
                )
                self._kafka_pipelines.append(pipeline)
                self._tasks.append(
                    asyncio.create_task(
                        self._start_on_kafka(pipeline, feed),
                        name=f"fastapi-streaming kafka {address} {partition}",
                    )
                )

    async def _start_on_kafka(self, pipeline: Pipeline, feed: Feed) -> None:
        """Start in the background: joining a group and reading checkpoints takes seconds,
        which the API's startup need not wait for (the group decides who computes anyway)."""
        while True:
            try:
                await pipeline.start(feed)
                return
            except Exception as exc:
                if self._stopping:
                    raise asyncio.CancelledError from exc
                logger.warning(
                    "Derived topic %s could not start on Kafka (%r); trying again",
                    pipeline.topic.address,
                    exc,
                )
                await asyncio.shield(pipeline.stop())
                await asyncio.sleep(1.0)

    async def _start_partitioned(self) -> None:
        url = redis_url(self.broker_url)
        from redis.asyncio import Redis as RedisClient  # only with the redis extra

        client = RedisClient.from_url(url)
        self._directory = StreamDirectory(url)
        consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        for address in self.partitioned:
            template = self.pipelines[address]
            channel = template.topic.channel or address
            group = PartitionGroup(
                client, channel, template.derivation.partitions, consumer, self.lease_ttl_ms
            )
            owner = PartitionedOwner(
                address, group, self._pipeline_maker(template), self._partition_feed
            )
            self.partition_owners[address] = owner
            with contextlib.suppress(Exception):
                await group.join()
                await owner.rebalance()  # take a share now, as a single owner does
            self._tasks.append(
                asyncio.create_task(owner.run(), name=f"fastapi-streaming partitions {address}")
            )

    def _pipeline_maker(self, template: Pipeline) -> Callable[[], Pipeline]:
        """Makes the pipeline of one partition: the derived topic's, with a state of its own."""
        return lambda: Pipeline(template.topic, template.topics, self.runtime)

    def _partition_feed(self, pipeline: Pipeline, claim: PartitionClaim) -> StreamFeed:
        count = pipeline.derivation.partitions
        return StreamFeed(
            redis_url(self.broker_url),
            claim,
            [channel_pattern(source) for source in pipeline.sources],
            accepts=lambda channel: pipeline.partition_of(channel, count) == claim.partition,
            maxlen=stream_maxlen(self.broker_url),
            directory=self._directory,
        )

    async def stop(self) -> None:
        owned = set(self.owned)
        # redis-py may turn a cancellation inside a command into a ConnectionError, which the
        # owner loops take for a Redis failure and go on: they look at this flag instead.
        self._stopping = True
        for owner in self.partition_owners.values():
            owner.stopping = True
        await cancel_until_done(self._tasks)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for pipeline in self._kafka_pipelines:
            await pipeline.stop()
        self._kafka_pipelines = []
        for owner in self.partition_owners.values():
            await owner.stop()
        for owner in self.partition_owners.values():
            with contextlib.suppress(Exception):
                await owner.group.client.aclose()
                break  # one client, shared by every group
        self.partition_owners = {}
        if self._directory is not None:
            with contextlib.suppress(Exception):
                await self._directory.close()
            self._directory = None
        for address, lease in self.leases.items():
            with contextlib.suppress(Exception):
                if address in owned:
                    await lease.release()  # the next owner need not wait for it to expire
                await lease.close()

    async def _own(self, address: str, held: bool) -> None:
        """Take the lease when free, compute while it is held, let go when it is lost."""
        lease = self.leases[address]
        interval = lease.ttl_ms / 3000
        while True:
            if not held:
                await asyncio.sleep(interval)
                held = await self._try(address, lease.acquire)
                if not held:
                    continue
                await self._begin(address)
            try:
                while held:
                    await asyncio.sleep(interval)
                    held = await self._try(address, lease.renew)
                    if not held:
                        logger.warning("Lost the lease of derived topic %s", address)
            finally:
                self.owned.discard(address)
                await asyncio.shield(self.pipelines[address].stop())

    async def _begin(self, address: str) -> None:
        logger.info("This process now computes derived topic %s", address)
        self.owned.add(address)
        pipeline = self.pipelines[address]
        feed = self.host.derived_topic_feed(
            self.leases[address],
            [channel_pattern(source) for source in pipeline.sources],
            _source_channels(pipeline),
        )
        await pipeline.start(feed)

    async def _try(self, address: str, step: Callable[[], Awaitable[bool]]) -> bool:
        try:
            return await step()
        except Exception as exc:
            if self._stopping:
                raise asyncio.CancelledError from exc
            logger.warning("Could not hold the lease of %s: %r", address, exc)
            return False


def _source_channels(pipeline: Pipeline) -> Callable[[str], bool]:
    """Whether a channel is one of ``pipeline``'s sources' (a pattern matches others too)."""
    return lambda channel: pipeline.source_of(channel) is not None


def _partition_finder(pipeline: Pipeline, count: int) -> Callable[[str], int | None]:
    """The key partition of a source topic of ``pipeline`` (None: not a source's)."""
    return lambda topic: pipeline.partition_of(topic, count)
