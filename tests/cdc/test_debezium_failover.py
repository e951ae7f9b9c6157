"""Debezium's change topic on Kafka (tansu) read by a server process that is SIGKILLed mid-stream.

The app consumes Debezium-format events from tansu and publishes them to Redis, where a
subscriber counts them. It is killed by its PID while it works through the topic; the offsets
its consumer group committed by then may cover only what Redis had accepted, and a new process
reads on from there: every change arrives, a change published twice keeps its id.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.cdc.test_debezium import debezium
from tests.support.redis_control import RedisControl, private_redis
from tests.support.server import ServerProcess
from tests.support.tansu import TansuProcess

pytestmark = [pytest.mark.kafka, pytest.mark.cdc, pytest.mark.redis]

CHANGES = 10_000


async def produce_changes(
    broker: TansuProcess, topic: str, numbers: range
) -> dict[int, tuple[int, int]]:
    """Debezium events numbered ``numbers`` (their id and LSN); where each landed: partition,
    offset (tansu makes a topic of three partitions)."""
    producer = AIOKafkaProducer(bootstrap_servers=broker.address, linger_ms=20)
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic,
                debezium("c", None, {"id": n, "item": f"item {n}"}, n, envelope=n % 2 == 0),
                key=json.dumps({"id": n}).encode(),
            )
            for n in numbers
        ]
        landed = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return {n: (meta.partition, meta.offset) for n, meta in zip(numbers, landed, strict=True)}


async def committed_offsets(broker: TansuProcess, topic: str) -> dict[int, int]:
    """What the app's consumer group committed, by partition (0 where nothing)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.address,
        group_id=f"fastapi-streaming-cdc.{topic}",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        await consumer.topics()  # fetches the cluster's metadata
        found = consumer.partitions_for_topic(topic) or set()
        return {
            partition: await consumer.committed(TopicPartition(topic, partition)) or 0
            for partition in found
        }
    finally:
        await consumer.stop()


def covered(landed: dict[int, tuple[int, int]], committed: dict[int, int]) -> set[int]:
    """The changes the committed offsets say are done: below the offset of their partition."""
    return {n for n, (partition, offset) in landed.items() if offset < committed.get(partition, 0)}


class Subscriber:
    """The change events that reach a Redis channel, by Debezium LSN (here: the row's id)."""

    def __init__(self, url: str, channel: str) -> None:
        self.client = aioredis.Redis.from_url(url)
        self.channel = channel
        self.received: list[dict[str, Any]] = []

    def numbers(self) -> set[int]:
        return {event["data"]["after"]["id"] for event in self.received}

    async def wait_for_numbers(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.numbers()) < count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    @asynccontextmanager
    async def listening(self) -> AsyncIterator[Subscriber]:
        pubsub = self.client.pubsub()
        await pubsub.subscribe(self.channel)

        async def collect() -> None:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    self.received.append(json.loads(message["data"]))

        collector = asyncio.create_task(collect())
        try:
            yield self
        finally:
            collector.cancel()
            await pubsub.aclose()
            await self.client.aclose()

    def assert_ids_are_stable(self) -> None:
        by_id: dict[str, int] = {}
        for event in self.received:
            number = event["data"]["after"]["id"]
            assert by_id.setdefault(event["id"], number) == number
        assert len(by_id) == len(self.numbers())


def app_env(broker: TansuProcess, topic: str, broker_url: str, prefix: str) -> dict[str, str]:
    return {
        "DEBEZIUM_TOPIC": topic,
        "KAFKA_SERVERS": broker.address,
        "BROKER_URL": broker_url,
        "CHANNEL_PREFIX": prefix,
    }


@pytest.fixture
def topic() -> str:
    return f"dbserver1.public.orders_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def apps() -> Iterator[list[ServerProcess]]:
    """The server processes a test starts; each is stopped by its PID at the end."""
    started: list[ServerProcess] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()
            server.log_path.unlink(missing_ok=True)


async def test_a_sigkilled_app_commits_only_what_the_broker_took_and_the_next_reads_on(
    tansu_broker: TansuProcess, topic: str, channel_prefix: str, apps: list[ServerProcess]
) -> None:
    landed = await produce_changes(tansu_broker, topic, range(1, CHANGES + 1))
    env = app_env(tansu_broker, topic, "redis://127.0.0.1:6379", channel_prefix)
    subscriber = Subscriber("redis://127.0.0.1:6379", channel_prefix + "tables.orders")
    async with subscriber.listening():
        apps.append(ServerProcess("tests.apps.cdc_app:app", env=env).start())
        # Past the first batch read (at most 1,000): its offsets were committed (or not) by then.
        await subscriber.wait_for_numbers(CHANGES // 4, timeout=60)
        apps[0].stop(signal.SIGKILL)
        await asyncio.sleep(1)  # what Redis accepted before the kill reaches the subscriber
        before_restart = subscriber.numbers()
        committed = covered(landed, await committed_offsets(tansu_broker, topic))

        restarted = time.monotonic()
        apps.append(ServerProcess("tests.apps.cdc_app:app", env=env).start())
        await subscriber.wait_for_numbers(len(before_restart) + 1, timeout=120)
        resumed = time.monotonic() - restarted
        await subscriber.wait_for_numbers(CHANGES, timeout=120)
        await asyncio.sleep(0.5)

    assert len(before_restart) < CHANGES, "the app was not killed mid-stream"
    # Every change below a committed offset had reached the broker.
    assert committed, "nothing was committed before the kill"
    assert committed <= before_restart, (
        f"{len(committed - before_restart)} changes committed before they reached Redis"
    )
    assert subscriber.numbers() == set(range(1, CHANGES + 1))
    subscriber.assert_ids_are_stable()
    print(
        f"killed after {len(before_restart)} changes, {len(committed)} committed; "
        f"duplicates: {len(subscriber.received) - CHANGES}; the next app read on after "
        f"{resumed:.1f}s"
    )


@pytest.fixture
def own_redis() -> Iterator[RedisControl]:
    with private_redis("redis") as control:
        yield control


async def test_offsets_stay_put_while_the_broker_refuses_and_a_kill_loses_nothing(
    tansu_broker: TansuProcess,
    topic: str,
    channel_prefix: str,
    apps: list[ServerProcess],
    own_redis: RedisControl,
) -> None:
    first = await produce_changes(tansu_broker, topic, range(1, 101))
    env = app_env(tansu_broker, topic, own_redis.url, channel_prefix)
    apps.append(ServerProcess("tests.apps.cdc_app:app", env=env).start())
    subscriber = Subscriber(own_redis.url, channel_prefix + "tables.orders")
    async with subscriber.listening():
        await subscriber.wait_for_numbers(100, timeout=60)
        deadline = time.monotonic() + 30
        while covered(first, await committed_offsets(tansu_broker, topic)) != set(first):
            assert time.monotonic() < deadline, "the first 100 offsets were never committed"
            await asyncio.sleep(0.2)
    await own_redis.stop()  # the broker refuses from now on
    second = await produce_changes(tansu_broker, topic, range(101, 201))
    await asyncio.sleep(3)  # the app reads them and keeps failing to publish
    committed = covered({**first, **second}, await committed_offsets(tansu_broker, topic))
    apps[0].stop(signal.SIGKILL)
    assert committed == set(first), "offsets were committed for changes the broker refused"

    await own_redis.start()
    subscriber = Subscriber(own_redis.url, channel_prefix + "tables.orders")
    async with subscriber.listening():
        apps.append(ServerProcess("tests.apps.cdc_app:app", env=env).start())
        await subscriber.wait_for_numbers(100, timeout=60)
        await asyncio.sleep(0.5)
    assert subscriber.numbers() == set(second)
    subscriber.assert_ids_are_stable()
