"""Broker lag and WebSub retries over a real ``/metrics``, summed over two uvicorn workers on
Redis (prometheus-client's multiprocess mode), with the hub's database shared by both."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from redis import asyncio as aioredis

from tests.conftest import REDIS_URL
from tests.e2e.test_limits import app_env, bearer
from tests.support.clients import sse_stream
from tests.support.server import ServerProcess
from tests.support.websub import Subscriber

pytestmark = pytest.mark.redis

LAG = 'streaming_broker_lag_seconds{topic="/feed/{name}"}'
RETRIES = 'streaming_websub_retries_total{topic="/feed/{name}"}'
DEAD = 'streaming_websub_dead_subscriptions_total{topic="/feed/{name}"}'
RETRY_QUEUE = "streaming_websub_retry_queue"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    return app_env(
        "memory://",
        BROKER_URL=REDIS_URL,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        WEBSUB_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        WEBSUB_MAX_ATTEMPTS="2",
        WEBSUB_RETRY_BASE="2",  # a failed delivery waits 1 to 2 s in the retry queue
    )


@pytest.fixture
def workers(env: dict[str, str]) -> Iterator[ServerProcess]:
    with ServerProcess("tests.apps.limits_app:app", env=env, workers=2) as running:
        yield running


def samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def scrape_until(
    base_url: str, condition: Callable[[dict[str, float]], bool], timeout: float = 15
) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url) as http:
        while not condition(found := samples((await http.get("/metrics")).text)):
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.1)
    return found


async def test_lag_is_the_time_from_the_envelope_to_the_fan_out(
    workers: ServerProcess, env: dict[str, str]
) -> None:
    channel = env["CHANNEL_PREFIX"] + "feed.lagging"
    async with AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(sse_stream(workers.url, "/streams/sse/feed/lagging"))
            for _ in range(4)
        ]
        # An event published a minute ago (its envelope says so), reaching the workers now.
        published = datetime.now(timezone.utc) - timedelta(seconds=60)
        envelope = {
            "specversion": "1.0",
            "id": "late-event",
            "source": "elsewhere",
            "type": "example",
            "time": published.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "data": {"late": True},
        }
        redis = aioredis.Redis.from_url(REDIS_URL)
        try:
            await redis.publish(channel, json.dumps(envelope))
        finally:
            await redis.aclose()
        for stream in streams:
            await stream.wait_for(1)
        found = await scrape_until(workers.url, lambda found: LAG in found)
        assert found[LAG] >= 60
        # A fresh event replaces it: the gauge is the lag of each worker's last event.
        async with httpx.AsyncClient(base_url=workers.url) as http:
            await http.post("/streams/publish/feed/lagging", json={}, headers=bearer("pub"))
        for stream in streams:
            await stream.wait_for(2)
        await scrape_until(workers.url, lambda found: found.get(LAG, 60) < 60)


async def test_websub_retries_the_retry_queue_and_subscriptions_out_of_attempts(
    workers: ServerProcess,
) -> None:
    async with Subscriber() as subscriber, httpx.AsyncClient(base_url=workers.url) as http:
        callback = subscriber.behave("/broken", statuses=[500])
        answer = await http.post(
            "/streams/websub/hub",
            data={
                "hub.mode": "subscribe",
                "hub.topic": f"{workers.url}/streams/websub/feed/hooks",
                "hub.callback": callback,
            },
        )
        assert answer.status_code == 202
        await subscriber.wait_until(lambda: len(subscriber.verifications("/broken")) == 1)
        # Publish until a delivery is attempted: the subscription is active from then on.
        deadline = time.monotonic() + 15
        while not subscriber.deliveries("/broken"):
            assert time.monotonic() < deadline, "the subscription never became active"
            await http.post("/streams/publish/feed/hooks", json={}, headers=bearer("pub"))
            await asyncio.sleep(0.3)
        # Each event is tried twice (max_attempts=2), 1 to 2 s apart: one retry, then given up.
        await scrape_until(workers.url, lambda found: found.get(RETRY_QUEUE, 0) >= 1)

        def attempts() -> Counter[str]:
            return Counter(r.headers["X-Hub-Event-Id"] for r in subscriber.deliveries("/broken"))

        await subscriber.wait_until(lambda: set(attempts().values()) == {2}, timeout=20)
        events = len(attempts())
        # A worker's counts reach the scrape at its next sync (within a second).
        found = await scrape_until(
            workers.url,
            lambda found: (
                found.get(DEAD, 0) == events
                and found.get(RETRIES, 0) == events
                and found.get(RETRY_QUEUE) == 0
            ),
        )
    assert found[RETRIES] == events  # every event: one retry, then out of attempts
    assert found['streaming_websub_deliveries_total{outcome="failed"}'] == 2 * events
