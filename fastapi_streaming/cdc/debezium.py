"""Debezium's change topics on Kafka as a change source.

Where Debezium already captures databases (any it supports), its change topics become table
topics here: ``DebeziumChanges("kafka:9092", topic="dbserver1.public.orders")``. Messages are
Debezium's JSON converter output, with the schema envelope (``{"schema": ..., "payload":
...}``) or without it; tombstones (null values after deletes) are skipped.

Exactly one consumer per change comes from Kafka itself: every worker joins one consumer group,
and Kafka gives each partition to one member and moves it when a member dies. Offsets are
committed only after the broker accepted the changes before them (at least once), and the event
id is made from Debezium's ``source`` position and the message key, so a change Debezium or
this consumer delivers twice keeps its id.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any

from .capture import CapturedChange, Checkpoint, Item
from .errors import CaptureConfigurationError
from .table import TableInfo

logger = logging.getLogger("fastapi_streaming.cdc")

OPS = frozenset({"c", "u", "d", "r", "t"})


class NotAChange(ValueError):
    """A message that is not a Debezium change event."""


def parse_change(key: bytes | None, value: bytes | None, *, topic: str) -> CapturedChange | None:
    """A Debezium JSON message as a change; None for a tombstone."""
    if value is None:
        return None
    try:
        document = json.loads(value)
    except ValueError as exc:
        raise NotAChange(f"not JSON: {exc}") from None
    if isinstance(document, dict) and "payload" in document and "schema" in document:
        document = document["payload"]
    if document is None:
        return None
    if not isinstance(document, dict) or document.get("op") not in OPS:
        raise NotAChange("no Debezium envelope (op, before, after, source)")
    source = document.get("source")
    if not isinstance(source, dict):
        raise NotAChange("no source block")
    commit_ms = int(source.get("ts_ms") or document.get("ts_ms") or 0)
    where = [source.get(name) for name in ("lsn", "txId", "file", "pos", "row", "gtid")]
    identity = key.decode(errors="replace") if key is not None else ""
    position = ":".join(
        str(part)
        for part in (
            "debezium",
            source.get("connector"),
            source.get("name"),
            source.get("db"),
            source.get("schema"),
            source.get("table") or topic,
            *where,
            document["op"],
            identity,
        )
    )
    return CapturedChange(
        op=document["op"],
        before=_row(document.get("before")),
        after=_row(document.get("after")),
        source=source,
        commit_ms=commit_ms,
        position=position,
    )


def _row(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise NotAChange("before/after is not an object")


class DebeziumChanges:
    """The change events Debezium writes to a Kafka topic.

    Args:
        bootstrap_servers: the Kafka brokers (``host:port``, comma-separated).
        topic: Debezium's topic of one table (``<prefix>.<schema>.<table>``).
        group_id: the consumer group all workers share (default: derived from the topic).
    """

    def __init__(self, bootstrap_servers: str, *, topic: str, group_id: str | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.group_id = group_id or f"fastapi-streaming-cdc.{topic}"
        self.name = f"debezium {topic}"
        self._consumer: Any = None
        self.skipped = 0

    async def check(self, parameters: tuple[str, ...]) -> TableInfo:
        """Kafka must answer; the columns are unknown until changes arrive."""
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        # A producer only bootstraps: a consumer's stop() can raise CancelledError here.
        client = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers)
        try:
            await client.start()
        except KafkaError as exc:
            raise CaptureConfigurationError(
                f"Cannot reach Kafka at {self.bootstrap_servers} for the Debezium topic "
                f"{self.topic}: {exc}. Check bootstrap_servers."
            ) from None
        finally:
            await client.stop()
        *_, table = self.topic.split(".")
        return TableInfo(database="", schema=None, table=table, columns=())

    async def reflect(self) -> TableInfo:
        return await self.check(())

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[Callable[[], bool]]:
        """Kafka's consumer group gives each partition to one worker: nothing more to hold."""
        yield lambda: True

    async def changes(self) -> AsyncGenerator[Sequence[Item], None]:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        self._consumer = consumer
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
                items: list[Item] = []
                offsets = {}
                for partition, messages in batches.items():
                    for message in messages:
                        try:
                            change = parse_change(message.key, message.value, topic=self.topic)
                        except NotAChange as exc:
                            self.skipped += 1
                            logger.warning(
                                "Skipped the message at offset %s of %s: %s",
                                message.offset,
                                partition,
                                exc,
                            )
                            change = None
                        if change is not None:
                            items.append(change)
                    if messages:
                        offsets[partition] = messages[-1].offset + 1
                if offsets:
                    items.append(Checkpoint(offsets))
                yield items
        finally:
            self._consumer = None
            await consumer.stop()

    async def confirm(self, token: Any) -> None:
        if self._consumer is not None:
            await self._consumer.commit(token)

    def health(self) -> dict[str, Any]:
        return {
            "source": "debezium",
            "topic": self.topic,
            "group": self.group_id,
            "skipped": self.skipped,
        }

    async def close(self) -> None:
        return None
