"""The Kafka feed of a derived topic hands out the records of many topics in the order the
broker took them, as the Redis Streams feed does: one topic's later records must not pass
another's earlier ones, or event-time windows drop events as late that were not."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from fastapi_streaming.processing.kafka_feed import KafkaFeed, Reassigned
from tests.support.tansu import TansuProcess

pytestmark = pytest.mark.kafka

TOPICS = 40
ROUNDS = 30  # 1,200 records: more than one fetch hands out (BATCH = 500)


async def test_records_of_many_topics_come_in_the_order_they_were_written(
    tansu_broker: TansuProcess, channel_prefix: str
) -> None:
    topics = [f"{channel_prefix}clicks.page-{n}" for n in range(TOPICS)]
    admin = AIOKafkaAdminClient(bootstrap_servers=tansu_broker.address)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1) for topic in topics])
    await admin.close()
    feed = KafkaFeed(tansu_broker.address, f"{channel_prefix}per-second", [f"{channel_prefix}*"])
    producer = AIOKafkaProducer(bootstrap_servers=tansu_broker.address)
    await producer.start()
    try:
        await asyncio.wait_for(feed.load(), 60)
        # Round after round over every topic, each record stamped 1 ms after the last, so
        # that the broker's timestamps say the order they were written in.
        stamp = (feed.checkpoint.origin_ms // 1000 + 2) * 1000
        for turn in range(ROUNDS):
            for n, topic in enumerate(topics):
                sequence = turn * TOPICS + n
                await producer.send(topic, str(sequence).encode(), timestamp_ms=stamp + sequence)
        await producer.flush()
        received: list[int] = []

        async def read() -> None:
            while True:
                try:
                    async for batch, positions in feed.batches():
                        received.extend(int(message) for _, message in batch)
                        feed.advance(positions)
                        if len(received) >= ROUNDS * TOPICS:
                            return
                except Reassigned:  # the group formed after the first load: from the start
                    await feed.load()
                    received.clear()

        await asyncio.wait_for(read(), 60)
    finally:
        await producer.stop()
        with contextlib.suppress(Exception):
            await feed.close()
    assert received == sorted(received)
    assert received == list(range(ROUNDS * TOPICS))
