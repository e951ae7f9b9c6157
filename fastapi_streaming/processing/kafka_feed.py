"""Derived topics on Kafka: one owner chosen by a consumer group, checkpoints in a topic.

Every process runs a consumer of the group ``fastapi-streaming.derive.<derived channel>``,
subscribed to the sources' topics by pattern. The group's assignor (:mod:`.kafka_assignor`)
gives every partition to one member: Kafka's group protocol elects the owner and notices when it
dies (its session times out), so no lease of ours is needed. With ``partitions=N`` there is a
group per key partition, whose assignor gives only that partition's topics, to one member
chosen so that the partitions spread over the processes. The owner reads the sources from its
checkpoint and, after each batch,

1. commits the batch's offsets to the group (refused once the group has moved on: the fence),
2. publishes the derived events the batch produced,
3. writes a checkpoint (the engine's state and the position in every partition) to the topic
   ``fastapi-streaming.checkpoints``, keyed by the derived channel.

A new owner restores the last checkpoint and reads on from its positions. Tansu, the Kafka
broker the tests use, refuses transactions, so these three steps cannot be one: a process that
dies between 2 and 3 has its last batch's results published again by the next owner, with the
same ids (at least once, duplicates recognisable by id), where Redis Streams publish exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import pickle
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, IllegalGenerationError
from aiokafka.structs import OffsetAndMetadata

from .kafka_assignor import Assignment, one_owner
from .kafka_order import ArrivalOrder, records_of
from .stream_feed import BATCH, Checkpoint

logger = logging.getLogger("fastapi_streaming.processing")

CHECKPOINTS = "fastapi-streaming.checkpoints"
#: Milliseconds one fetch waits while the sources are quiet.
FETCH_MS = 500
#: ... and while records wait to go out in order (:mod:`.kafka_order`).
HOLD_FETCH_MS = 50
#: Milliseconds without a heartbeat before the group gives a dead owner's partitions away.
SESSION_TIMEOUT_MS = 6_000


class Reassigned(RuntimeError):
    """The group moved partitions since the checkpoint was loaded: load it again."""


class KafkaFeed(ConsumerRebalanceListener):  # type: ignore[misc]
    """Feeds a pipeline from Kafka topics and commits its output with checkpoints."""

    def __init__(
        self,
        servers: str,
        channel: str,
        patterns: list[str],
        accepts: Callable[[str], bool] = lambda topic: True,
        assignment: Assignment | None = None,
    ) -> None:
        self.servers = servers
        self.assignment = assignment or Assignment()
        #: Names the checkpoint and the group: the derived channel, and the partition if any.
        self.name = self.assignment.name(channel)
        self.pattern = "|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)
        self.accepts = accepts
        self.checkpoint = Checkpoint(origin_ms=0)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._assignments = 0  # how many assignments the group has made here
        self._loaded_at = -1  # ... when the checkpoint was last loaded
        self._topics: set[str] = set()
        self._order = ArrivalOrder()

    # -- the group's calls -------------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._assignments += 1

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._assignments += 1

    # -- the pipeline's calls ----------------------------------------------------------------

    async def load(self) -> Checkpoint:
        """The last checkpoint (or a new one starting now), with the consumer sought to it."""
        consumer = await self._started()
        raw = await self._read_checkpoint()
        if raw is None:
            self.checkpoint = Checkpoint(origin_ms=int(time.time() * 1000))
            await self._write_checkpoint()
        else:
            self.checkpoint = pickle.loads(raw)  # written by this library's owners only
        self._loaded_at = self._assignments
        assigned = list(consumer.assignment())
        unknown = [tp for tp in assigned if _position_key(tp) not in self.checkpoint.positions]
        starts: dict[TopicPartition, int] = {}
        if unknown:
            found = await consumer.offsets_for_times(
                {tp: self.checkpoint.origin_ms for tp in unknown}
            )
            ends = await consumer.end_offsets(unknown)
            for tp in unknown:
                hit = found.get(tp)
                starts[tp] = ends[tp] if hit is None else hit.offset
        sought: dict[tuple[str, int], int] = {}
        for tp in assigned:
            known = self.checkpoint.positions.get(_position_key(tp))
            sought[(tp.topic, tp.partition)] = int(known) if known is not None else starts[tp]
            consumer.seek(tp, sought[(tp.topic, tp.partition)])
        self._order.reset(sought)
        return self.checkpoint

    async def batches(self) -> AsyncIterator[tuple[list[tuple[str, str]], dict[str, str]]]:
        """Batches of (topic, message) after the checkpoint's positions, in timestamp order
        across all the partitions (:class:`~.kafka_order.ArrivalOrder`)."""
        consumer = await self._started()

        def highwater(key: tuple[str, int]) -> int | None:
            end: int | None = consumer.highwater(TopicPartition(*key))
            return end

        while True:
            wait = HOLD_FETCH_MS if self._order.holding else FETCH_MS
            fetched = await consumer.getmany(timeout_ms=wait, max_records=BATCH)
            if self._assignments != self._loaded_at:
                raise Reassigned("the group moved partitions: back to the checkpoint")
            self._order.add(records_of(fetched))
            records = self._order.release(highwater)
            if not records:
                continue
            positions: dict[str, str] = {}
            out: list[tuple[str, str]] = []
            for _, topic, partition, offset, value in records:
                positions[_position_key(TopicPartition(topic, partition))] = str(offset + 1)
                if value is None or not self.accepts(topic):
                    continue
                try:
                    out.append((topic, value.decode()))
                except UnicodeDecodeError:
                    logger.warning("Skipped a message of Kafka topic %r that is not UTF-8", topic)
            yield out, positions

    def advance(self, positions: dict[str, str]) -> None:
        self.checkpoint.positions.update(positions)

    async def commit(self, state: dict[str, Any] | None, outputs: list[tuple[str, str]]) -> None:
        """Fence with the group, publish ``outputs``, then save the checkpoint."""
        consumer = await self._started()
        if self._assignments != self._loaded_at or not consumer.assignment():
            raise Reassigned("this process no longer owns the derived topic")
        offsets = {
            tp: OffsetAndMetadata(int(position), "")
            for key, position in self.checkpoint.positions.items()
            if (tp := _from_position_key(key)) in consumer.assignment()
        }
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalGenerationError) as exc:
            raise Reassigned(f"the group moved on: {exc!r}") from exc
        producer = self._connected(self._producer)
        for channel in {channel for channel, _ in outputs} - self._topics:
            await self._ensure_topic(channel)
        sent = [await producer.send(channel, message.encode()) for channel, message in outputs]
        await asyncio.gather(*sent)
        self.checkpoint.engine = state
        await self._write_checkpoint()

    async def close(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()
        self._consumer = self._producer = self._admin = None

    # -- internals ---------------------------------------------------------------------------

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is not None:
            return self._consumer
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.servers)
        self._producer = AIOKafkaProducer(bootstrap_servers=self.servers, acks="all")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.servers,
            group_id=f"fastapi-streaming.derive.{self.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(one_owner(self.assignment),),
            metadata_max_age_ms=1000,  # new source topics are found within a second
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=SESSION_TIMEOUT_MS // 3,
        )
        await self._admin.start()
        await self._producer.start()
        await self._ensure_topic(CHECKPOINTS)
        consumer.subscribe(pattern=self.pattern, listener=self)
        await consumer.start()
        self._consumer = consumer
        return consumer

    def _connected(self, client: Any) -> Any:
        if client is None:
            raise ConnectionError("the Kafka feed is not started")
        return client

    async def _ensure_topic(self, topic: str) -> None:
        admin = self._connected(self._admin)
        # Compacted: a new owner reads the checkpoints through, and needs only the last ones.
        configs = {"cleanup.policy": "compact"} if topic == CHECKPOINTS else {}
        with contextlib.suppress(Exception):  # exists already, or created elsewhere
            await admin.create_topics([NewTopic(topic, 1, 1, topic_configs=configs)])
        self._topics.add(topic)

    async def _read_checkpoint(self) -> bytes | None:
        latest = None
        async for key, value in checkpoint_records(self.servers):
            if key == self.name.encode():
                latest = value
        return latest

    async def _write_checkpoint(self) -> None:
        producer = self._connected(self._producer)
        await producer.send_and_wait(
            CHECKPOINTS, pickle.dumps(self.checkpoint), key=self.name.encode()
        )


async def checkpoint_records(servers: str) -> AsyncIterator[tuple[bytes, bytes]]:
    """Every (derived topic, checkpoint) of the checkpoint topic, oldest first, up to its end
    when the read began: a derived topic's last one is its checkpoint."""
    reader = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await reader.start()
    try:
        partition = TopicPartition(CHECKPOINTS, 0)
        reader.assign([partition])
        end = (await reader.end_offsets([partition]))[partition]
        await reader.seek_to_beginning(partition)
        while await reader.position(partition) < end:
            fetched = await reader.getmany(partition, timeout_ms=1000)
            for record in fetched.get(partition, ()):
                yield record.key, record.value
    finally:
        await reader.stop()


def _position_key(tp: TopicPartition) -> str:
    return f"{tp.topic}\x00{tp.partition}"


def _from_position_key(key: str) -> TopicPartition:
    topic, _, partition = key.partition("\x00")
    return TopicPartition(topic, int(partition))
