"""Three server processes share a derived topic's key partitions through a Redis Streams
consumer group; one is SIGKILLed midway, and every window of 1,000 keys is still right, and
emitted once, as a live client and a resuming client see it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from fastapi_streaming.events import Event
from fastapi_streaming.processing.partitions import GROUP
from tests.conftest import REDIS_URL
from tests.support.clients import SSEClient, sse_stream
from tests.support.server import ServerProcess

pytestmark = pytest.mark.redis

KEYS = 1_000
PARTITIONS = 6
WINDOWS = 8  # seconds of event time counted; one more closes the last
ADDRESS = "/streams/sse/clicks/per-second"


def clicks_in(page: int, second: int) -> int:
    """How many clicks page ``page`` gets in window ``second``: 1 to 3, so counts differ."""
    return 1 + (page + second) % 3


@pytest.fixture
async def redis(channel_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    for pattern in (f"{channel_prefix}*", f"fastapi-streaming:*{channel_prefix}*"):
        async for key in client.scan_iter(match=pattern, count=1000):
            await client.delete(key)
    await client.aclose()


@pytest.fixture
def three_servers(channel_prefix: str) -> Iterator[list[ServerProcess]]:
    broker = REDIS_URL.replace("redis://", "redis-stream://") + "?maxlen=0&history=20000"
    env = {"BROKER_URL": broker, "CHANNEL_PREFIX": channel_prefix, "PARTITIONS": str(PARTITIONS)}
    with (
        ServerProcess("tests.apps.partitioned_app:app", env=env) as a,
        ServerProcess("tests.apps.partitioned_app:app", env=env) as b,
        ServerProcess("tests.apps.partitioned_app:app", env=env) as c,
    ):
        yield [a, b, c]


async def publish(redis: Redis, prefix: str, base: float, clicks: list[tuple[int, int, int]]):
    """Write clicks (page, window, n-th of the window) into the source streams, as another
    system feeding the broker would, in one round trip per 1,000."""
    for start in range(0, len(clicks), 1_000):
        pipe = redis.pipeline(transaction=False)
        for page, second, nth in clicks[start : start + 1_000]:
            ts = base + second + (nth + 1) / (clicks_in(page, second) + 1)
            event = Event.create(f"/clicks/page-{page}", {"user": "u", "ts": ts})
            pipe.xadd(f"{prefix}clicks.page-{page}", {"message": event.to_message()})
        await pipe.execute()


def window_clicks(second: int, nths: range | None = None) -> list[tuple[int, int, int]]:
    return [
        (page, second, nth)
        for page in range(KEYS)
        for nth in range(clicks_in(page, second))
        if nths is None or nth in nths
    ]


async def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def results(client: SSEClient) -> list[tuple[str, dict[str, Any]]]:
    return [(event.id, json.loads(event.data)) for event in client.events if event.data]


async def test_three_processes_share_1000_keys_and_one_is_killed_midway(
    three_servers: list[ServerProcess], redis: Redis, channel_prefix: str
) -> None:
    a, b, c = three_servers
    tokens = f"fastapi-streaming:partitions:{channel_prefix}clicks-per-second:{PARTITIONS}"

    async def balanced() -> bool:
        with contextlib.suppress(Exception):
            consumers = await redis.xinfo_consumers(tokens, GROUP)
            held = sorted(consumer["pending"] for consumer in consumers)
            return held[-3:] == [PARTITIONS // 3] * 3
        return False

    await until(balanced, 30, "the three processes to hold two partitions each")
    checkpoints = [
        f"fastapi-streaming:checkpoint:{channel_prefix}clicks-per-second"
        f"#partition-{p}-of-{PARTITIONS}"
        for p in range(PARTITIONS)
    ]

    async def every_stream_known() -> bool:
        known: set[str] = set()
        for key in checkpoints:
            raw = await redis.get(key)
            if raw is not None:
                known |= set(pickle.loads(raw).positions)
        return len(known) == KEYS

    base = float(int(time.time()) - 1000)
    async with sse_stream(a.url, ADDRESS) as live:
        await publish(redis, channel_prefix, base, window_clicks(0))
        # New streams are found once a second; the next second must not reach a partition
        # before its pages' first second did, or those clicks would be late.
        await until(every_stream_known, 30, "the partitions to find the 1,000 source streams")
        for second in range(1, 5):
            await publish(redis, channel_prefix, base, window_clicks(second))
        # Midway through second 5: the first click of every page, then the owner dies.
        await publish(redis, channel_prefix, base, window_clicks(5, range(1)))
        await live.wait_for(5 * KEYS, timeout=60)  # seconds 0-4 closed and counted
        before_kill = {data["by"] for _, data in results(live)}
        c.stop(signal.SIGKILL)
        await publish(redis, channel_prefix, base, window_clicks(5, range(1, 3)))
        for second in range(6, WINDOWS + 1):
            await publish(redis, channel_prefix, base, window_clicks(second))

        async def all_counted() -> bool:
            return len(results(live)) >= WINDOWS * KEYS

        await until(all_counted, 60, "every window to be counted")
        await asyncio.sleep(1.0)  # time for a duplicate, if one were emitted
        seen = results(live)

        ids = [event_id for event_id, _ in seen]
        resume_from = ids[KEYS - 1]
        async with sse_stream(b.url, ADDRESS, headers={"Last-Event-ID": resume_from}) as later:

            async def resumed() -> bool:
                return len(results(later)) >= len(ids) - KEYS

            await until(resumed, 30, "the resuming client to catch up")
            await asyncio.sleep(0.5)
            resumed_ids = [event_id for event_id, _ in results(later)]

    assert before_kill == {a.pid, b.pid, c.pid}  # the work was split among the three
    assert len(ids) == len(set(ids)) == WINDOWS * KEYS  # each window once, by id
    windows = {(data["page"], data["start"]): data for _, data in seen}
    assert len(windows) == WINDOWS * KEYS
    for page in range(KEYS):
        for second in range(WINDOWS):
            data = windows[(f"page-{page}", base + second)]
            assert data["count"] == clicks_in(page, second), (page, second, data)
    after_kill = {data["by"] for (_, start), data in windows.items() if start >= base + 5}
    assert c.pid not in after_kill
    assert resumed_ids == ids[KEYS:]  # a resuming client sees the same events, once each
