"""The broker goes away and comes back: clients stay connected, publishing says 503 meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.brokers import RedisProcess
from tests.support.clients import post, receive_json, sse_stream, websocket
from tests.support.redis_control import private_redis
from tests.support.server import ServerProcess

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    process = RedisProcess().start()
    try:
        yield process
    finally:
        process.stop()


async def health(server: ServerProcess) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        return await http.get("/streams/health")


async def test_clients_survive_a_redis_restart(redis_process: RedisProcess) -> None:
    env = {"BROKER_URL": redis_process.url}
    with ServerProcess("tests.apps.core_app:app", env=env) as server:
        async with (
            sse_stream(server.url, "/streams/sse/rooms/1") as sse,
            websocket(server.ws_url + "/streams/ws/rooms/1") as ws,
        ):
            assert (
                await post(server.url, "/streams/publish/rooms/1", json={"text": "a"})
            ).status_code == 202
            await sse.wait_for(1)
            await receive_json(ws)

            redis_process.stop()
            started = time.monotonic()
            answer = await post(server.url, "/streams/publish/rooms/1", json={"text": "lost"})
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "1"
            assert time.monotonic() - started < 6, "publishing must never hang"
            assert (await health(server)).status_code == 503

            redis_process.start()
            for _ in range(100):
                if (await health(server)).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            report = (await health(server)).json()
            assert report["status"] == "ok" and report["broker"]["reconnects"] >= 1

            answer = await post(server.url, "/streams/publish/rooms/1", json={"text": "b"})
            assert answer.status_code == 202
            # Pub/sub cannot hand over what was published while it was away: the clients are
            # told so before the next event.
            events = await sse.wait_for(3)
            assert [e.event for e in events] == ["message", "gap", "message"]
            assert events[-1].data == '{"text":"b","author":"anonymous@room-1"}'
            assert (await receive_json(ws))["type"] == "gap"
            assert (await receive_json(ws))["text"] == "b"


@pytest.mark.parametrize("scheme", ["redis", "redis-stream"])
async def test_health_asks_the_broker_even_with_no_channel_subscribed(scheme: str) -> None:
    """With no client, nothing listens on the broker: health must ping it, not assume it."""
    with private_redis(scheme) as redis:
        # Without the console, which follows a channel of its own for disconnect requests.
        env = {"BROKER_URL": redis.url, "CONSOLE": "0"}
        with ServerProcess("tests.apps.core_app:app", env=env) as server:
            report = (await health(server)).json()
            assert (report["status"], report["broker"]["channels"]) == ("ok", 0)

            await redis.stop()
            answer = await health(server)
            assert answer.status_code == 503
            assert answer.json()["broker"]["connected"] is False
            published = await post(server.url, "/streams/publish/rooms/1", json={"text": "x"})
            assert published.status_code == 503

            await redis.start()
            for _ in range(100):
                if (await health(server)).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await health(server)).json()["status"] == "ok"
