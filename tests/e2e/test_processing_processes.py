"""Three server processes on Redis (and on RabbitMQ and Mosquitto, through the AMQP and MQTT
plugins) compute a derived topic once, and hand it over when the owner is killed."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.conftest import REDIS_URL
from tests.support.processing import (
    counts,
    owner_killed_mid_window,
    two_clicks,
    wait_for_window,
    watched_servers,
)

pytestmark = pytest.mark.redis

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture(params=["redis", "amqp", "mqtt"])
async def live_broker_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A broker that keeps no history for the owner: Redis pub/sub, RabbitMQ (an exchange of
    this test's own, deleted after), where the lease is an exclusive queue, or Mosquitto (a
    topic prefix of this test's own), where the candidates elect the owner."""
    if request.param == "redis":
        yield REDIS_URL
        return
    if request.param == "mqtt":
        pytest.importorskip("fastapi_streaming_mqtt")
        yield f"mqtt://127.0.0.1:1883/e2e_{uuid.uuid4().hex[:12]}"
        return
    aio_pika = pytest.importorskip("aio_pika")
    pytest.importorskip("fastapi_streaming_amqp")
    exchange = f"e2e_{uuid.uuid4().hex[:12]}"
    yield f"{RABBITMQ}?exchange={exchange}"
    connection = await aio_pika.connect(RABBITMQ)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(exchange)


async def test_the_owner_is_killed_and_another_process_takes_over_within_seconds(
    live_broker_url: str, channel_prefix: str
) -> None:
    """Windows that start after the takeover are counted whole by the one new owner; those the
    dead owner had open are lost with it (the broker keeps no history for the owner)."""
    env = {"BROKER_URL": live_broker_url, "CHANNEL_PREFIX": channel_prefix}
    base = float(int(time.time()) - 1000)
    async with watched_servers(env) as watched:
        servers, on_a = watched.servers, watched.clients[0]
        await two_clicks(servers[0], base)
        await two_clicks(servers[1], base + 1)  # closes the first second
        await on_a.wait_for(1)
        (first,) = counts(on_a)
        assert first == {"page": "home", "start": base, "count": 2, "by": first["by"]}
        owner, survivors, watcher = watched.split(first["by"])

        owner.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        second = base + 2
        # Clicks go on; the first windows after the kill have no owner to count them.
        while time.monotonic() - killed_at < 20:
            await two_clicks(survivors[second % 2 == 0], second)
            second += 1
            if any(c["by"] != owner.pid for c in counts(watcher)):
                break
            await asyncio.sleep(0.5)
        taken_over = time.monotonic() - killed_at
        await two_clicks(survivors[0], second)
        await two_clicks(survivors[1], second + 1)  # closes `second`, computed by the new owner
        await wait_for_window(watcher, second, 10)
        await asyncio.sleep(0.5)  # time for a second owner to emit duplicates, if there were one
        results = counts(watcher)

    assert taken_over < 10  # lease of 3 s, tried every second
    new_owners = {c["by"] for c in results[1:]}
    assert len(new_owners) == 1 and owner.pid not in new_owners
    starts = [c["start"] for c in results]
    assert len(starts) == len(set(starts))  # no window emitted twice
    (last,) = [c for c in results if c["start"] == second]
    assert last == {"page": "home", "start": second, "count": 2, "by": new_owners.pop()}


async def test_on_redis_streams_the_owner_killed_mid_window_loses_nothing(
    channel_prefix: str,
) -> None:
    """SIGKILL the owner in the middle of a window: the window's result is emitted once, by
    the new owner, and counts every click, those the old owner had seen included."""
    env = {
        "BROKER_URL": REDIS_URL.replace("redis://", "redis-stream://"),
        "CHANNEL_PREFIX": channel_prefix,
    }
    results, owner_pid, window = await owner_killed_mid_window(env)
    starts = [c["start"] for c in results]
    assert len(starts) == len(set(starts))  # no window emitted twice
    second = [c for c in results if c["start"] == window]
    assert len(second) == 1
    assert second[0]["count"] == 4  # and correct: two before the kill, two after
    assert second[0]["by"] != owner_pid
