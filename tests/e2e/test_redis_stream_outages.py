"""``redis-stream://`` through Redis outages: resumes are refused while Redis is down, say
``gap`` when Redis came back without its history, and delivery starts again at once.

Each test runs a private redis-server without persistence and stops it by its PID; the shared
Redis is never touched.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.brokers import RedisProcess
from tests.support.clients import receive_json, send_json, sse_stream, websocket
from tests.support.server import ServerProcess

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    process = RedisProcess().start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def server(redis_process: RedisProcess) -> Iterator[ServerProcess]:
    env = {"BROKER_URL": f"redis-stream://127.0.0.1:{redis_process.port}"}
    with ServerProcess("tests.apps.core_app:app", env=env) as running:
        yield running


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


async def publish(http: httpx.AsyncClient, room: int, texts: list[str]) -> list[str]:
    ids = []
    for text in texts:
        answer = await http.post(f"/streams/publish/rooms/{room}", json={"text": text})
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    return ids


async def wait_health(http: httpx.AsyncClient, up: bool, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if ((await http.get("/streams/health")).status_code == 200) is up:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"health never said {'up' if up else 'down'}")


async def restart_empty(redis_process: RedisProcess, http: httpx.AsyncClient) -> None:
    """Stop Redis, let the server notice, start it again with nothing in it."""
    await asyncio.to_thread(redis_process.stop)
    await wait_health(http, up=False)
    await asyncio.to_thread(redis_process.start)
    await wait_health(http, up=True)


async def test_a_resume_while_redis_is_down_gets_503_and_other_subscriptions_stay(
    server: ServerProcess, redis_process: RedisProcess, http: httpx.AsyncClient
) -> None:
    (first,) = await publish(http, 1, ["before the outage"])
    async with websocket(server.ws_url + "/streams/ws") as ws:
        await send_json(ws, {"type": "subscribe", "id": 1, "topic": "/rooms/2"})
        assert await receive_json(ws) == {"type": "ack", "id": 1}
        await asyncio.to_thread(redis_process.stop)
        await wait_health(http, up=False)

        headers = {"Last-Event-ID": first}
        async with http.stream("GET", "/streams/sse/rooms/1", headers=headers) as answer:
            assert answer.status_code == 503, await answer.aread()
            assert answer.headers["retry-after"] == "1"
            assert "retry" in json.loads(await answer.aread())["detail"]

        resume = {"type": "subscribe", "id": 2, "topic": "/rooms/1", "last_event_id": first}
        await send_json(ws, resume)
        error = await receive_json(ws)
        assert (error["type"], error["id"], error["code"]) == ("error", 2, 503)

        # A one-topic socket has nothing else to do: it closes with 1013, try again later.
        url = f"{server.ws_url}/streams/ws/rooms/1?last_event_id={first}"
        async with websocket(url) as single:
            with pytest.raises(ConnectionClosed) as closed:
                await single.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013

        await asyncio.to_thread(redis_process.start)
        await wait_health(http, up=True)
        # The socket and its other subscription are still there; the refused one can be retried.
        (live,) = await publish(http, 2, ["after the outage"])
        gap = await receive_json(ws)  # Redis came back empty: it cannot vouch for the outage
        assert (gap["type"], gap["topic"]) == ("gap", "/rooms/2")
        event = await receive_json(ws)
        assert (event["type"], event["id"]) == ("event", live)
        await send_json(ws, resume)
        assert await receive_json(ws) == {"type": "ack", "id": 2}


async def test_delivery_starts_again_at_once_after_redis_returns_with_an_idle_channel(
    server: ServerProcess, redis_process: RedisProcess, http: httpx.AsyncClient
) -> None:
    """Two subscribed channels, one idle: the first event after Redis returns took about 5 s
    (the blocking read's timeout) in most tries; each round here is one try."""
    delays = []
    async with (
        sse_stream(server.url, "/streams/sse/rooms/3") as active,
        sse_stream(server.url, "/streams/sse/rooms/4") as idle,
    ):
        await publish(http, 3, ["before"])
        await active.wait_for(1)
        for round_ in range(3):
            await restart_empty(redis_process, http)
            started = asyncio.get_running_loop().time()
            await publish(http, 4, [f"after {round_}"])
            await idle.wait_for(round_ + 1, timeout=20)
            delays.append(asyncio.get_running_loop().time() - started)
    assert max(delays) < 2, f"first deliveries after recovery took {delays} s"


async def test_a_resume_after_redis_restarted_empty_starts_with_a_gap(
    server: ServerProcess, redis_process: RedisProcess, http: httpx.AsyncClient
) -> None:
    """Events 11-20 died with Redis: a resume from event 10 gets a gap, then 21-25."""
    seen = await publish(http, 5, [f"event {n}" for n in range(1, 11)])
    await publish(http, 5, [f"event {n}" for n in range(11, 21)])
    # A subscribed client, so that the server notices the outage (it reads the stream).
    async with sse_stream(server.url, "/streams/sse/rooms/6"):
        await restart_empty(redis_process, http)
    after = await publish(http, 5, [f"event {n}" for n in range(21, 26)])

    headers = {"Last-Event-ID": seen[-1]}
    async with sse_stream(server.url, "/streams/sse/rooms/5", headers=headers) as again:
        events = await again.wait_for(6)
    assert events[0].event == "gap"
    assert json.loads(events[0].data)["last_event_id"] == seen[-1]
    assert [event.id for event in events[1:]] == after

    async with websocket(server.ws_url + "/streams/ws") as ws:
        resume = {"type": "subscribe", "id": 1, "topic": "/rooms/5", "last_event_id": seen[-1]}
        await send_json(ws, resume)
        assert await receive_json(ws) == {"type": "ack", "id": 1}
        gap = await receive_json(ws)
        assert (gap["type"], gap["topic"], gap["last_event_id"]) == ("gap", "/rooms/5", seen[-1])
        replayed = [await receive_json(ws) for _ in after]
    assert [message["id"] for message in replayed] == after
