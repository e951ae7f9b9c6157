"""Kafka, hardened against the gaps of broadcaster 0.3.1's backend.

broadcaster's backend unsubscribes every channel when one is left, starts consumers wherever
the group coordinator puts them and keeps no position, so a broker restart loses messages.
Here one consumer is *assigned* the partitions of the subscribed topics, so:

- ``unsubscribe`` removes exactly one topic, and the others keep their positions;
- every process receives every message (fan-out); a shared consumer group would split the
  messages among processes instead, so none is used;
- ``subscribe`` returns once the consumer sits at the topic's end offset, so a message
  published right after it is delivered, and nothing older is;
- the position of each partition is remembered across a reconnection, so messages published
  while the process was cut off are delivered afterwards (as far as the broker retained them:
  :meth:`KafkaBackend.continued` says so, and the clients get a ``gap`` otherwise);
- a broker that stops answering is raised from ``next_published()`` (aiokafka's own clients
  retry silently forever), so the caller reconnects;
- :meth:`KafkaBackend.history` reads back a channel from a point in time, for resumes.

URL: ``kafka://host:9092`` or ``kafka://host1:9092,host2:9092``. Topics are created on first
use with the query options ``partitions`` (default 1: one partition keeps a channel in order)
and ``replication_factor`` (default 1; use 3 on a production cluster, or create the topics
beforehand).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError
from broadcaster import BroadcastBackend

from ..stopping import cancel_until_done
from .hookspecs import BrokerMessage

logger = logging.getLogger("fastapi_streaming.broker.kafka")

#: Seconds between probes of the broker, and how long one may take.
PROBE_INTERVAL = 5.0
PROBE_TIMEOUT = 5.0
#: Seconds a history read may take.
HISTORY_TIMEOUT = 10.0
#: Seconds a publish may wait for the broker before it fails. aiokafka's default (40 s) keeps a
#: message queued through an outage and sends it once the broker is back, long after the
#: publisher was told it failed (fastapi-streaming gives up after 5 s and answers 503); with
#: this, the queued message expires and the publish raises before that.
PUBLISH_TIMEOUT = 4.0
#: The largest message the producer sends (aiokafka's default, and Kafka's ``message.max.bytes``).
MAX_MESSAGE_BYTES = 1024 * 1024

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_ALREADY_EXISTS = 36


class _Lost:
    """Put on the queue when the broker is lost, so ``next_published`` raises."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class KafkaBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._servers = parts.netloc.rpartition("@")[2]  # credentials go in the query
        options = dict(parse_qsl(parts.query))
        self._partitions = int(options.get("partitions", 1))
        self._replication = int(options.get("replication_factor", 1))
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        #: Looks up offsets apart from the reading consumer, whose connection is usually busy
        #: with a long-polling fetch that a lookup would queue behind.
        self._offsets: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._channels: set[str] = set()
        self._known_topics: set[str] = set()
        #: Next offset to deliver, per assigned partition.
        self._positions: dict[TopicPartition, int] = {}
        #: Positions kept from before a disconnect, to continue from on resubscribe.
        self._resume: dict[TopicPartition, int] = {}
        #: Channels whose last subscription went on from kept positions the broker still holds.
        self._continued: set[str] = set()
        self._lock = asyncio.Lock()
        self._queue: asyncio.Queue[BrokerMessage | _Lost] = asyncio.Queue()
        #: Set by the broker connection (``PushDelivery``): called with every message read.
        self.push: Callable[[BrokerMessage], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self) -> None:
        self._queue = asyncio.Queue()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._servers,
            acks="all",
            max_request_size=MAX_MESSAGE_BYTES,
            request_timeout_ms=int(PUBLISH_TIMEOUT * 1000),
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._servers,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_bytes=MAX_MESSAGE_BYTES * 2,
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES * 2,
        )
        self._offsets = AIOKafkaConsumer(bootstrap_servers=self._servers, enable_auto_commit=False)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self._servers)
        try:
            await self._producer.start()
            await self._consumer.start()
            await self._offsets.start()
            await self._admin.start()
        except BaseException:
            await self._stop_clients()
            raise
        self._tasks = [
            asyncio.create_task(self._read(), name="kafka backend reader"),
            asyncio.create_task(self._probe(), name="kafka backend probe"),
        ]

    async def disconnect(self) -> None:
        await cancel_until_done(self._tasks)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._resume.update(self._positions)
        self._positions = {}
        self._channels = set()
        self._known_topics = set()
        await self._stop_clients()

    async def subscribe(self, channel: str) -> None:
        _check_topic(channel)
        async with self._lock:
            if channel in self._channels:
                return
            await self._ensure_topic(channel)
            partitions = await self._connected(self._producer).partitions_for(channel)
            added = [TopicPartition(channel, p) for p in sorted(partitions)]
            offsets = self._connected(self._offsets)
            ends = await offsets.end_offsets(added)
            resumes = {p: self._resume.pop(p, None) for p in added}
            kept = {p: r for p, r in resumes.items() if r is not None}
            begins = await offsets.beginning_offsets(list(kept)) if kept else {}
            self._continued.discard(channel)
            if len(kept) == len(added) and all(r >= begins[p] for p, r in kept.items()):
                self._continued.add(channel)
            for partition, resume in resumes.items():
                end = ends[partition]
                self._positions[partition] = end if resume is None else min(resume, end)
            self._channels.add(channel)
            self._assign()

    def continued(self, channel: str) -> bool:
        """Whether the last subscription of ``channel`` went on from the positions this process
        had reached, in every partition, and the broker still retains everything after them."""
        return channel in self._continued

    async def unsubscribe(self, channel: str) -> None:
        async with self._lock:
            self._continued.discard(channel)
            if channel not in self._channels:
                return
            self._channels.discard(channel)
            for partition in [p for p in self._positions if p.topic == channel]:
                del self._positions[partition]
            for partition in [p for p in self._resume if p.topic == channel]:
                del self._resume[partition]
            self._assign()

    async def publish(self, channel: str, message: Any) -> None:
        _check_topic(channel)
        data = str(message).encode()
        await self._ensure_topic(channel)
        try:
            await self._connected(self._producer).send_and_wait(channel, data)
        except MessageSizeTooLargeError as exc:
            raise ValueError(
                f"the message of {len(data)} bytes is over the size limit of Kafka topic "
                f"{channel!r} (max_request_size {MAX_MESSAGE_BYTES} bytes here, and the "
                f"broker's message.max.bytes): {exc}"
            ) from exc

    async def next_published(self) -> BrokerMessage:
        item = await self._queue.get()
        if isinstance(item, _Lost):
            raise ConnectionError(f"lost the Kafka broker at {self._servers}: {item.reason}")
        return item

    async def ping(self) -> None:
        """Ask the broker about the cluster (health checks)."""
        await self._connected(self._admin).describe_cluster()

    async def history(self, channel: str, since_ms: int) -> tuple[list[BrokerMessage], bool]:
        """Messages of ``channel`` with a timestamp at or after ``since_ms``, oldest first.

        The flag is True when the broker provably still holds everything since then: nothing
        was ever deleted from the topic, or an older message is still retained.
        """
        _check_topic(channel)
        await self._ensure_topic(channel)
        partitions = await self._connected(self._producer).partitions_for(channel)
        reader = AIOKafkaConsumer(
            bootstrap_servers=self._servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES * 2,
        )
        await reader.start()
        try:
            return await asyncio.wait_for(
                _read_since(
                    self._connected(self._offsets),
                    reader,
                    [TopicPartition(channel, p) for p in partitions],
                    since_ms,
                ),
                HISTORY_TIMEOUT,
            )
        finally:
            await reader.stop()

    # -- internals ---------------------------------------------------------------------------

    async def backlog(self) -> dict[str, int]:
        """Messages of each subscribed topic after this process's position, from the end
        offsets the consumer's last fetch saw (no round trip)."""
        consumer = self._consumer
        if consumer is None:
            return {}
        behind: dict[str, int] = {}
        for partition, position in tuple(self._positions.items()):
            end = consumer.highwater(partition)
            if end is not None:
                behind[partition.topic] = behind.get(partition.topic, 0) + max(end - position, 0)
        return behind

    def _connected(self, client: Any) -> Any:
        if client is None:
            raise ConnectionError("the Kafka backend is not connected")
        return client

    def _assign(self) -> None:
        """Assign exactly the remembered partitions, each at its remembered position.

        ``assign`` replaces the whole assignment and forgets positions, so every partition is
        sought again; records fetched twice because of that are skipped by offset in ``_read``.
        """
        consumer = self._connected(self._consumer)
        consumer.assign(list(self._positions))
        for partition, offset in self._positions.items():
            consumer.seek(partition, offset)

    async def _ensure_topic(self, channel: str) -> None:
        """Create the topic unless this backend already saw it (so it has our partitions)."""
        if channel in self._known_topics:
            return
        admin = self._connected(self._admin)
        topic = NewTopic(channel, self._partitions, self._replication)
        response = await admin.create_topics([topic])
        for _name, code, *rest in response.topic_errors:
            if code not in (0, _ALREADY_EXISTS):
                # Creation may be forbidden where topics are managed elsewhere; using the
                # topic then shows whether it exists.
                logger.info("Could not create Kafka topic %r: error %s %s", channel, code, rest)
        self._known_topics.add(channel)

    async def _read(self) -> None:
        consumer = self._connected(self._consumer)
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._queue.put_nowait(_Lost(f"reading failed: {exc!r}"))
                return
            for partition, records in batches.items():
                for record in records:
                    self._deliver(partition, record.offset, record.value)

    def _deliver(self, partition: TopicPartition, offset: int, value: bytes | None) -> None:
        position = self._positions.get(partition)
        if position is None or offset < position:  # unsubscribed, or fetched again
            return
        self._positions[partition] = offset + 1
        text = _text(value)
        if text is None:
            logger.warning("Skipped a message on Kafka topic %r that is not UTF-8", partition.topic)
            return
        message = BrokerMessage(channel=partition.topic, message=text)
        if self.push is not None:
            self.push(message)  # a fetched batch reaches the topics together
        else:
            self._queue.put_nowait(message)

    async def _probe(self) -> None:
        """Ask the broker about the cluster every few seconds; silence means it is gone."""
        admin = self._connected(self._admin)
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                await asyncio.wait_for(admin.describe_cluster(), PROBE_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._queue.put_nowait(_Lost(f"the broker did not answer: {exc!r}"))
                return

    async def _stop_clients(self) -> None:
        consumer, offsets, producer, admin = (
            self._consumer,
            self._offsets,
            self._producer,
            self._admin,
        )
        self._producer = self._consumer = self._offsets = self._admin = None
        for client in (consumer, offsets, producer):
            if client is not None:
                await _quietly(client.stop(), type(client).__name__)
                # A stop() cancelled inside aiokafka (see _quietly) never reaches closing its
                # connections and metadata task; closing them again is harmless otherwise.
                connections = getattr(client, "_client", None) or getattr(client, "client", None)
                if connections is not None:
                    await _quietly(connections.close(), f"the connections of {client!r}")
        if admin is not None:
            await _quietly(admin.close(), "AIOKafkaAdminClient")


async def _quietly(stopping: Coroutine[Any, Any, None], what: str) -> None:
    """Stop an aiokafka client, whatever it raises.

    After a lost broker, ``AIOKafkaConsumer.stop()`` lets out the ``CancelledError`` of its
    own fetch task (aiokafka 0.14), which would end the caller's task as if it were cancelled.
    Stopping in a task of its own keeps that inside; cancelling the caller still works.
    """
    task = asyncio.ensure_future(stopping)
    await asyncio.wait({task})
    if task.cancelled():
        logger.debug("Stopping %s was cancelled inside aiokafka", what)
    elif task.exception() is not None:
        logger.debug("Stopping %s failed: %r", what, task.exception())


async def _read_since(
    offsets: AIOKafkaConsumer,
    reader: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    since_ms: int,
) -> tuple[list[BrokerMessage], bool]:
    """Read ``partitions`` from ``since_ms`` to their current end."""
    begins = await offsets.beginning_offsets(partitions)
    ends = await offsets.end_offsets(partitions)
    found = await offsets.offsets_for_times({p: since_ms for p in partitions})
    starts: dict[TopicPartition, int] = {}
    for partition in partitions:
        hit = found.get(partition)
        offset = ends[partition] if hit is None else hit.offset
        starts[partition] = max(begins[partition], min(offset, ends[partition]))
    complete = {p: begins[p] == 0 or starts[p] > begins[p] for p in partitions}
    pending = {p for p in partitions if starts[p] < ends[p]}
    records: list[tuple[int, TopicPartition, int, str]] = []
    if pending:
        reader.assign(list(pending))
        for partition in pending:
            reader.seek(partition, starts[partition])
    while pending:
        batches = await reader.getmany(timeout_ms=1000)
        for partition, batch in batches.items():
            for record in batch:
                if record.offset >= ends[partition]:
                    continue
                if record.timestamp < since_ms:
                    complete[partition] = True  # an older message is still retained
                    continue
                text = _text(record.value)
                if text is not None:
                    records.append((record.timestamp, partition, record.offset, text))
        for partition in list(pending):
            if await reader.position(partition) >= ends[partition]:
                pending.discard(partition)
    if len(partitions) > 1:  # merge partitions by time; within one, offsets are the order
        records.sort(key=lambda r: (r[0], r[1].partition, r[2]))
    events = [
        BrokerMessage(channel=partition.topic, message=text) for _, partition, _, text in records
    ]
    return events, all(complete.values())


def _check_topic(channel: str) -> None:
    if not _TOPIC_NAME.fullmatch(channel) or channel in (".", ".."):
        raise ValueError(
            f"{channel!r} cannot be a Kafka topic: use 1 to 249 of the characters A-Z a-z 0-9 . _ -"
        )


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return None
