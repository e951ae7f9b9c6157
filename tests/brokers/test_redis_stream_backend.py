"""The ``redis-stream://`` backend's own behaviour: trimming, history, wake-ups, reconnection."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from fastapi_streaming.brokers.extensions import BacklogBackend, HistoryBackend
from fastapi_streaming.brokers.hookspecs import BrokerMessage
from fastapi_streaming.brokers.redis_stream import BLOCK_MS, RedisStreamBackend
from fastapi_streaming.brokers.stream_epochs import EPOCHS_KEY
from fastapi_streaming.plugins import create_backend
from tests.support.redis_control import RedisControl, private_redis

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379"
STREAM_URL = "redis-stream://127.0.0.1:6379"


async def next_event(backend: RedisStreamBackend, timeout: float = 5) -> BrokerMessage:
    return await asyncio.wait_for(backend.next_published(), timeout)


@pytest.fixture
async def plain_redis() -> AsyncIterator[Redis]:
    """An ordinary client, as another system writing into the same Redis would use."""
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def stream_name(plain_redis: Redis) -> AsyncIterator[str]:
    """A prefix for this test's streams; they are deleted afterwards (streams outlive readers)."""
    prefix = f"test-redis-stream.{uuid.uuid4().hex}"
    yield prefix
    keys = [key async for key in plain_redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await plain_redis.delete(*keys)
    marks = [f async for f, _ in plain_redis.hscan_iter(EPOCHS_KEY, match=f"stream:{prefix}*")]
    if marks:
        await plain_redis.hdel(EPOCHS_KEY, *marks)


async def connected(url: str = STREAM_URL) -> RedisStreamBackend:
    backend = RedisStreamBackend(url)
    await backend.connect()
    return backend


@pytest.fixture
async def backend() -> AsyncIterator[RedisStreamBackend]:
    backend = await connected()
    yield backend
    await backend.disconnect()


async def redis_millis(client: Redis) -> int:
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000


@pytest.fixture
def private() -> Iterator[RedisControl]:
    with private_redis("redis-stream") as control:
        yield control


# -- URL and registration ---------------------------------------------------------------------


def test_the_redis_stream_scheme_gets_this_backend() -> None:
    backend = create_backend("redis-stream://127.0.0.1:6379")
    assert isinstance(backend, RedisStreamBackend)
    assert isinstance(backend, HistoryBackend)
    assert isinstance(create_backend("rediss-stream://127.0.0.1:6379"), RedisStreamBackend)


def test_options_come_from_the_query_and_the_rest_goes_to_redis() -> None:
    backend = RedisStreamBackend("redis-stream://:pw@127.0.0.1:6379/2?maxlen=50&history=7")
    assert (backend.maxlen, backend.history_limit) == (50, 7)
    assert RedisStreamBackend("redis-stream://h").maxlen == 10_000
    assert RedisStreamBackend("redis-stream://h").history_limit == 1_000


@pytest.mark.parametrize("query", ["maxlen=-1", "maxlen=many", "history=0"])
def test_bad_options_are_refused(query: str) -> None:
    with pytest.raises(ValueError, match="Redis Streams URL"):
        RedisStreamBackend(f"redis-stream://127.0.0.1:6379?{query}")


# -- publishing and trimming ------------------------------------------------------------------


async def test_publish_trims_the_stream_to_about_maxlen(
    plain_redis: Redis, stream_name: str
) -> None:
    trimmed = await connected(f"{STREAM_URL}?maxlen=100")
    untrimmed = await connected(f"{STREAM_URL}?maxlen=0")
    try:
        for number in range(1000):
            await trimmed.publish(f"{stream_name}.trimmed", str(number))
            await untrimmed.publish(f"{stream_name}.kept", str(number))
    finally:
        await trimmed.disconnect()
        await untrimmed.disconnect()
    length = await plain_redis.xlen(f"{stream_name}.trimmed")
    assert 100 <= length < 300, length  # "~": whole nodes are trimmed, never below maxlen
    assert await plain_redis.xlen(f"{stream_name}.kept") == 1000
    newest = await plain_redis.xrevrange(f"{stream_name}.trimmed", count=1)
    assert newest[0][1] == {b"message": b"999"}, "the field is named 'message'"


# -- history ----------------------------------------------------------------------------------


async def test_history_returns_entries_from_a_point_in_time_oldest_first(
    backend: RedisStreamBackend, plain_redis: Redis, stream_name: str
) -> None:
    channel = f"{stream_name}.history"
    for number in range(3):
        await backend.publish(channel, f"old {number}")
    await asyncio.sleep(1.2)  # beyond the clock-skew margin
    since = await redis_millis(plain_redis)
    for number in range(5):
        await backend.publish(channel, f"new {number}")

    events, complete = await backend.history(channel, since)

    assert [event.message for event in events] == [f"new {n}" for n in range(5)]
    assert all(event.channel == channel for event in events)
    assert complete, "nothing was trimmed: the stream reaches back to `since`"


async def test_history_reads_a_second_further_back_for_clock_skew(
    backend: RedisStreamBackend, plain_redis: Redis, stream_name: str
) -> None:
    channel = f"{stream_name}.skew"
    await backend.publish(channel, "just before")
    since = await redis_millis(plain_redis) + 300  # the publisher's clock ran 300 ms ahead
    events, _ = await backend.history(channel, since)
    assert [event.message for event in events] == ["just before"]


async def test_history_after_trimming_says_it_is_incomplete(
    plain_redis: Redis, stream_name: str
) -> None:
    channel = f"{stream_name}.trimmed"
    backend = await connected(f"{STREAM_URL}?maxlen=100")
    try:
        since = await redis_millis(plain_redis)
        await asyncio.sleep(0.01)
        for number in range(1000):
            await backend.publish(channel, str(number))
        events, complete = await backend.history(channel, since)
    finally:
        await backend.disconnect()
    assert not complete
    messages = [event.message for event in events]
    assert messages == [str(n) for n in range(1000 - len(messages), 1000)], "the newest, in order"


async def test_history_of_a_trimmed_stream_is_complete_after_the_trimmed_part(
    plain_redis: Redis, stream_name: str
) -> None:
    channel = f"{stream_name}.later"
    backend = await connected(f"{STREAM_URL}?maxlen=100")
    try:
        for number in range(1000):
            await backend.publish(channel, f"early {number}")
        await asyncio.sleep(1.2)
        since = await redis_millis(plain_redis)
        await backend.publish(channel, "late")
        events, complete = await backend.history(channel, since)
    finally:
        await backend.disconnect()
    assert [event.message for event in events] == ["late"]
    assert complete, "everything trimmed is older than `since`"


async def test_history_of_a_recreated_stream_is_incomplete(
    backend: RedisStreamBackend, plain_redis: Redis, stream_name: str
) -> None:
    """A deleted stream written again holds every entry it ever had, yet lost the old ones."""
    channel = f"{stream_name}.recreated"
    await backend.publish(channel, "first")
    since = await redis_millis(plain_redis)
    await backend.publish(channel, "lost")
    await plain_redis.delete(channel)
    await asyncio.sleep(0.01)  # the new stream's first entry is of a later millisecond
    await backend.publish(channel, "new")
    events, complete = await backend.history(channel, since)
    assert [event.message for event in events] == ["new"]
    assert not complete


async def test_history_after_redis_restarted_empty_is_incomplete(private: RedisControl) -> None:
    """The restart lost the dataset epoch: history that reaches back before it cannot vouch."""
    backend = await connected(private.url)
    client = Redis.from_url(f"redis://127.0.0.1:{private.process.port}")
    try:
        await backend.publish("restarted", "before")
        since = await redis_millis(client)
        await backend.publish("restarted", "lost")
        await backend.disconnect()
        await private.stop()
        await private.start()
        await client.aclose()
        client = Redis.from_url(f"redis://127.0.0.1:{private.process.port}")
        await backend.connect()
        await backend.publish("restarted", "after")
        events, complete = await backend.history("restarted", since)
        assert [event.message for event in events] == ["after"]
        assert not complete
        # Points after the restart are vouched for again.
        later = await redis_millis(client)
        await backend.publish("restarted", "later")
        events, complete = await backend.history("restarted", later)
        assert events[-1].message == "later" and complete
    finally:
        await client.aclose()
        await backend.disconnect()


async def test_history_is_bounded_by_the_history_option(
    plain_redis: Redis, stream_name: str
) -> None:
    channel = f"{stream_name}.bounded"
    backend = await connected(f"{STREAM_URL}?history=10")
    try:
        since = await redis_millis(plain_redis)
        for number in range(50):
            await backend.publish(channel, str(number))
        events, complete = await backend.history(channel, since)
    finally:
        await backend.disconnect()
    assert [event.message for event in events] == [str(n) for n in range(40, 50)]
    assert not complete, "entries before the newest 10 were not read"


async def test_history_of_a_missing_stream_is_incomplete(
    backend: RedisStreamBackend, plain_redis: Redis, stream_name: str
) -> None:
    events, complete = await backend.history(f"{stream_name}.gone", await redis_millis(plain_redis))
    assert (events, complete) == ([], False)


async def test_entries_that_are_not_utf8_or_lack_the_field_are_skipped(
    backend: RedisStreamBackend,
    plain_redis: Redis,
    stream_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel = f"{stream_name}.bad"
    since = await redis_millis(plain_redis)
    await backend.subscribe(channel)
    await plain_redis.xadd(channel, {"message": b"\xff\xfe"})
    await plain_redis.xadd(channel, {"other": b"field"})
    await plain_redis.xadd(channel, {"message": b"good"})
    with caplog.at_level(logging.WARNING, logger="fastapi_streaming.broker.redis_stream"):
        assert (await next_event(backend)).message == "good"
        events, _ = await backend.history(channel, since)
    assert [event.message for event in events] == ["good"]
    assert "not UTF-8" in caplog.text and "no b'message' field" in caplog.text


# -- the reader -------------------------------------------------------------------------------


async def test_a_new_subscription_wakes_the_blocked_reader(
    backend: RedisStreamBackend, stream_name: str
) -> None:
    await backend.subscribe(f"{stream_name}.first")
    await asyncio.sleep(0.3)  # the reader now blocks on the first stream
    await backend.subscribe(f"{stream_name}.second")
    started = time.monotonic()
    await backend.publish(f"{stream_name}.second", "prompt")
    event = await next_event(backend)
    assert (event.channel, event.message) == (f"{stream_name}.second", "prompt")
    assert time.monotonic() - started < BLOCK_MS / 1000 / 2, "it waited for the block timeout"


async def test_reading_resumes_after_the_last_subscription_left(
    backend: RedisStreamBackend, stream_name: str
) -> None:
    first, second = f"{stream_name}.a", f"{stream_name}.b"
    await backend.subscribe(first)
    await backend.publish(first, "one")
    assert (await next_event(backend)).message == "one"
    await backend.unsubscribe(first)
    await asyncio.sleep(0.3)  # no subscription at all for a while
    await backend.subscribe(second)
    await backend.publish(second, "two")
    event = await next_event(backend)
    assert (event.channel, event.message) == (second, "two")


async def test_one_read_returns_many_entries(private: RedisControl) -> None:
    """500 waiting entries take a handful of round trips, not 500 (a private Redis counts)."""
    backend = await connected(private.url)
    client = Redis.from_url(f"redis://127.0.0.1:{private.process.port}")
    try:
        await backend.subscribe("batch")
        await asyncio.sleep(0.2)
        async with client.pipeline(transaction=False) as pipe:
            for number in range(500):
                pipe.xadd("batch", {"message": str(number)})
            await pipe.execute()
        received = [(await next_event(backend)).message for _ in range(500)]
        calls = (await client.info("commandstats"))["cmdstat_xread"]["calls"]
    finally:
        await client.aclose()
        await backend.disconnect()
    assert received == [str(n) for n in range(500)]
    assert calls <= 20, f"{calls} reads for 500 entries"


async def test_a_reconnection_continues_where_reading_stopped(
    backend: RedisStreamBackend, plain_redis: Redis, stream_name: str
) -> None:
    """Disconnect, connect, subscribe (the broker connection's recovery) loses nothing."""
    channel = f"{stream_name}.outage"
    await backend.subscribe(channel)
    await backend.publish(channel, "before")
    assert (await next_event(backend)).message == "before"

    await backend.disconnect()
    for number in range(3):
        await plain_redis.xadd(channel, {"message": f"during {number}"})
    await backend.connect()
    await backend.subscribe(channel)
    await plain_redis.xadd(channel, {"message": "after"})

    received = [(await next_event(backend)).message for _ in range(4)]
    assert received == ["during 0", "during 1", "during 2", "after"]


async def test_unsubscribing_forgets_the_position(
    backend: RedisStreamBackend, plain_redis: Redis, stream_name: str
) -> None:
    channel = f"{stream_name}.forget"
    await backend.subscribe(channel)
    await backend.disconnect()
    await backend.connect()
    await backend.unsubscribe(channel)  # the channel's last listener left meanwhile
    await plain_redis.xadd(channel, {"message": "while away"})
    await backend.subscribe(channel)
    await plain_redis.xadd(channel, {"message": "fresh"})
    assert (await next_event(backend)).message == "fresh"


async def test_a_lost_connection_is_raised_and_disconnect_still_succeeds(
    private: RedisControl,
) -> None:
    backend = await connected(private.url)
    try:
        await backend.subscribe("lost")
        await asyncio.sleep(0.2)
        await private.stop()
        with pytest.raises(ConnectionError, match="lost the Redis connection"):
            await next_event(backend, timeout=10)
    finally:
        await backend.disconnect()  # Redis is down: closing must not raise
    readers = [task for task in asyncio.all_tasks() if task.get_name() == "redis stream reader"]
    assert not [task for task in readers if not task.done()]


async def test_a_subscription_gone_before_the_reader_woke_does_not_break_it(
    backend: RedisStreamBackend, stream_name: str
) -> None:
    await backend.subscribe(f"{stream_name}.brief")
    await backend.unsubscribe(f"{stream_name}.brief")  # before the reader ran: nothing to read
    await asyncio.sleep(0.2)
    await backend.subscribe(f"{stream_name}.lasting")
    await backend.publish(f"{stream_name}.lasting", "still reading")
    assert (await next_event(backend)).message == "still reading"


async def test_a_new_subscription_ends_the_blocked_read_without_a_new_connection(
    private: RedisControl,
) -> None:
    """Subscription changes unblock the reader (``CLIENT UNBLOCK``) instead of cancelling its
    read: redis-py does not always honour a cancellation (one that lands while the connection
    is being set up is swallowed, and the read blocks on for BLOCK_MS), and each cancelled read
    cost a reconnection."""
    backend = await connected(private.url)
    client = Redis.from_url(f"redis://127.0.0.1:{private.process.port}")
    try:
        await backend.subscribe("first")
        await asyncio.sleep(0.2)  # the reader blocks on the first stream
        before = (await client.info("stats"))["total_connections_received"]
        for number in range(20):
            await backend.subscribe(f"more.{number}")
            await backend.publish(f"more.{number}", "prompt")
            started = time.monotonic()
            assert (await next_event(backend)).message == "prompt"
            assert time.monotonic() - started < BLOCK_MS / 1000 / 2
        after = (await client.info("stats"))["total_connections_received"]
    finally:
        await client.aclose()
        await backend.disconnect()
    # The command pool may open a second connection for an unblock that overlaps a publish.
    assert after - before <= 2, f"{after - before} new connections for 20 subscriptions"


async def test_history_after_the_data_was_flushed_is_incomplete(private: RedisControl) -> None:
    """Data lost while the connection stayed up (FLUSHALL) is noticed too, and then marked."""
    backend = await connected(private.url)
    client = Redis.from_url(f"redis://127.0.0.1:{private.process.port}")
    try:
        await backend.publish("flushed", "before")
        since = await redis_millis(client)
        await backend.publish("flushed", "lost")
        await client.flushall()
        await backend.publish("flushed", "after")
        events, complete = await backend.history("flushed", since)
        assert [event.message for event in events] == ["after"] and not complete
        later = await redis_millis(client)
        await backend.publish("flushed", "later")
        events, complete = await backend.history("flushed", later)
        assert events[-1].message == "later" and complete
    finally:
        await client.aclose()
        await backend.disconnect()


async def test_backlog_counts_the_entries_this_process_has_not_read(
    plain_redis: Redis, stream_name: str
) -> None:
    """Nobody takes what the backend reads (no ``next_published()``): its queue fills up at
    1,000 entries and its reader waits, so 500 of 1,500 entries stay in Redis, unread."""
    backend = RedisStreamBackend(STREAM_URL)
    await backend.connect()
    try:
        await backend.subscribe(stream_name)
        assert isinstance(backend, BacklogBackend)
        assert await backend.backlog() == {stream_name: 0}
        pipe = plain_redis.pipeline(transaction=False)
        for number in range(1_500):
            pipe.xadd(stream_name, {"message": f'{{"n": {number}}}'})
        await pipe.execute()
        deadline = time.monotonic() + 10
        while (backlog := await backend.backlog()) != {stream_name: 500}:
            assert time.monotonic() < deadline, backlog
            await asyncio.sleep(0.05)
        for _ in range(1_000):
            await next_event(backend)
        deadline = time.monotonic() + 10
        while (backlog := await backend.backlog()) != {stream_name: 0}:
            assert time.monotonic() < deadline, backlog
            await asyncio.sleep(0.05)
    finally:
        await backend.disconnect()
