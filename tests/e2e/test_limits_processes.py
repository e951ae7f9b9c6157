"""Plans hold across worker processes: three uvicorn workers sharing their counters in Redis,
and Prometheus metrics summed over the workers (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_limits import app_env, bearer, token
from tests.support.clients import sse_stream
from tests.support.server import ServerProcess

pytestmark = pytest.mark.redis

REDIS = "redis://127.0.0.1:6379/0"
#: What a worker may let through past a delivery quota: the events its streams receive in one
#: flush interval (0.2 s here; publishes below come every 0.1 s, so at most 3 per stream).
PER_STREAM_TOLERANCE = 3


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    metrics_dir = Path(tmp_path_factory.mktemp("prometheus"))
    env = app_env(
        REDIS,
        BROKER_URL=REDIS,
        BULK_QUOTA="30/minute",
        TINY_QUOTA="20/minute",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    with ServerProcess("tests.apps.limits_app:app", env=env, workers=3) as running:
        yield running


async def worker_of(base_url: str) -> int:
    """Ask on a new connection: the kernel spreads new connections over the workers."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        pid: int = (await http.get("/test/worker")).json()["pid"]
        return pid


async def test_a_publish_quota_holds_across_three_workers(workers: ServerProcess) -> None:
    pids = {await worker_of(workers.url) for _ in range(30)}
    assert len(pids) >= 2, "the requests never reached more than one worker"
    statuses = []
    for number in range(60):
        async with httpx.AsyncClient(base_url=workers.url) as http:  # a new connection each
            answer = await http.post(
                "/streams/publish/feed/bulk", json={"n": number}, headers=bearer("mo", plan="bulk")
            )
        statuses.append(answer.status_code)
    # Publishes are charged as they come: no tolerance.
    assert statuses.count(202) == 30
    assert statuses.count(429) == 30
    assert statuses[:30] == [202] * 30


async def test_a_delivery_quota_holds_across_workers_within_the_tolerance(
    workers: ServerProcess,
) -> None:
    # One principal's three streams, opened on new connections (so on several workers); its
    # plan "tiny" counts 20 events a minute: 3 for the requests, 17 for deliveries.
    owner = token("ned", plan="tiny")
    async with (
        sse_stream(workers.url, "/streams/sse/feed/shared", access_token=owner) as one,
        sse_stream(workers.url, "/streams/sse/feed/shared", access_token=owner) as two,
        sse_stream(workers.url, "/streams/sse/feed/shared", access_token=owner) as three,
        httpx.AsyncClient(base_url=workers.url) as http,
    ):
        streams = (one, two, three)
        for number in range(40):
            await http.post(
                "/streams/publish/feed/shared", json={"n": number}, headers=bearer("publisher")
            )
            await asyncio.sleep(0.1)
            if all(stream.ended.is_set() for stream in streams):
                break
        await asyncio.wait_for(asyncio.gather(*(s.ended.wait() for s in streams)), 15)
    delivered = sum(len(stream.data()) for stream in streams)
    assert delivered <= 17 + 3 * PER_STREAM_TOLERANCE
    for stream in streams:
        ending = json.loads(next(e for e in stream.events if e.event == "close").data)
        assert ending["reason"] == "quota_exceeded"


async def published_total(base_url: str) -> float:
    async with httpx.AsyncClient(base_url=base_url) as http:
        text = (await http.get("/metrics")).text
    name = 'streaming_events_published_total{topic="/feed/{name}"}'
    lines = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


async def settled_total(base_url: str) -> float:
    """The total once every worker has synced what earlier tests published (1 s interval)."""
    previous = await published_total(base_url)
    while True:
        await asyncio.sleep(1.5)
        current = await published_total(base_url)
        if current == previous:
            return current
        previous = current


async def test_metrics_are_summed_over_the_workers(workers: ServerProcess) -> None:
    before = await settled_total(workers.url)
    pids = set()
    for number in range(12):
        async with httpx.AsyncClient(base_url=workers.url) as http:
            answer = await http.post(
                "/streams/publish/feed/counted", json={"n": number}, headers=bearer("publisher")
            )
            assert answer.status_code == 202
            pids.add((await http.get("/test/worker")).json()["pid"])
    assert len(pids) >= 2
    deadline = time.monotonic() + 15
    while await published_total(workers.url) < before + 12:
        assert time.monotonic() < deadline, "the workers' metrics never reached the scrape"
        await asyncio.sleep(0.5)
    assert await settled_total(workers.url) == before + 12
