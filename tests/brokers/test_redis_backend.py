"""The hardened ``redis://`` backend against the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
import warnings
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from fastapi_streaming.brokers.hookspecs import BrokerMessage
from fastapi_streaming.brokers.redis import RedisBackend

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379"


def unique(name: str) -> str:
    return f"test-redis-backend.{name}.{uuid.uuid4().hex}"


async def next_event(backend: RedisBackend) -> BrokerMessage:
    return await asyncio.wait_for(backend.next_published(), timeout=5)


@pytest.fixture
async def backend() -> AsyncIterator[RedisBackend]:
    backend = RedisBackend(REDIS_URL)
    await backend.connect()
    yield backend
    await backend.disconnect()


@pytest.fixture
async def plain_redis() -> AsyncIterator[Redis]:
    """An ordinary client, as another system writing into the same Redis would use."""
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_messages_published_right_after_subscribe_arrive(backend: RedisBackend) -> None:
    channel = unique("right-after")
    await backend.subscribe(channel)
    for number in range(5):
        await backend.publish(channel, f"message {number}")

    received = [await next_event(backend) for _ in range(5)]

    assert [(event.channel, event.message) for event in received] == [
        (channel, f"message {number}") for number in range(5)
    ]


async def test_unsubscribing_one_channel_keeps_the_other(
    backend: RedisBackend, plain_redis: Redis
) -> None:
    leaving, staying = unique("leaving"), unique("staying")
    await backend.subscribe(leaving)
    await backend.subscribe(staying)

    await backend.unsubscribe(leaving)
    await backend.publish(leaving, "nobody listens")
    await backend.publish(staying, "still here")

    event = await next_event(backend)
    assert (event.channel, event.message) == (staying, "still here")
    assert await plain_redis.pubsub_numsub(leaving, staying) == [
        (leaving.encode(), 0),
        (staying.encode(), 1),
    ]
    await backend.publish(staying, "and again")
    assert (await next_event(backend)).message == "and again"


async def test_a_message_that_is_not_utf8_is_skipped_and_logged(
    backend: RedisBackend, plain_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    channel = unique("bad-bytes")
    await backend.subscribe(channel)

    with caplog.at_level(logging.WARNING, logger="fastapi_streaming.brokers.redis"):
        await plain_redis.publish(channel, b"\xff\xfe not utf-8")
        await plain_redis.publish(channel, "good")
        event = await next_event(backend)

    assert (event.channel, event.message) == (channel, "good")
    warning = next(record for record in caplog.records if record.levelno == logging.WARNING)
    assert channel in warning.getMessage()
    assert "UTF-8" in warning.getMessage()


async def test_a_hundred_messages_arrive_in_order(backend: RedisBackend) -> None:
    channel = unique("ordered")
    await backend.subscribe(channel)

    for number in range(100):
        await backend.publish(channel, str(number))
    received = [await next_event(backend) for _ in range(100)]

    assert [event.message for event in received] == [str(number) for number in range(100)]


async def test_concurrent_subscribes_all_wait_for_their_confirmation(
    backend: RedisBackend,
) -> None:
    channels = [unique(f"concurrent-{number}") for number in range(10)]

    await asyncio.gather(*(backend.subscribe(channel) for channel in channels))
    for channel in channels:
        await backend.publish(channel, channel)

    received = {(await next_event(backend)).message for _ in channels}
    assert received == set(channels)


async def test_disconnect_leaves_no_tasks_or_connections(plain_redis: Redis) -> None:
    name = unique("disconnect")
    before = asyncio.all_tasks()
    backend = RedisBackend(f"{REDIS_URL}?client_name={name}")
    await backend.connect()
    await backend.subscribe(name)
    await backend.publish(name, "hello")
    assert (await next_event(backend)).message == "hello"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await backend.disconnect()
        del backend
        gc.collect()

    assert asyncio.all_tasks() == before
    assert [str(warning.message) for warning in caught] == []
    clients = await plain_redis.client_list()
    assert [client for client in clients if client["name"] == name] == []


async def test_a_lost_connection_is_recovered_or_reported(plain_redis: Redis) -> None:
    """Killed under it, the listener either reconnects (redis-py retries) or raises: never hangs."""
    name = unique("lost")
    backend = RedisBackend(f"{REDIS_URL}?client_name={name}")
    await backend.connect()
    try:
        await backend.subscribe(name)
        (listener,) = [
            client
            for client in await plain_redis.client_list(_type="pubsub")
            if client["name"] == name
        ]
        await plain_redis.client_kill_filter(_id=listener["id"])

        outcome = None
        for attempt in range(50):
            await plain_redis.publish(name, f"after-{attempt}")
            try:
                event = await asyncio.wait_for(backend.next_published(), 0.1)
            except asyncio.TimeoutError:
                continue
            except ConnectionError as exc:
                outcome = f"reported: {exc}"
                break
            outcome = f"recovered: {event.message}"
            break
        assert outcome is not None, "the loss was neither recovered nor reported"
    finally:
        await backend.disconnect()
