"""Redis Streams keep history: a client resumes on another process, and outages lose nothing.

Two server processes share the real Redis through ``redis-stream://``. Unlike pub/sub, no
process needs to have been listening while the client was away: the stream itself holds what
the client missed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from redis import asyncio as redis

from fastapi_streaming.brokers.stream_epochs import EPOCHS_KEY
from tests.conftest import REDIS_URL
from tests.support.brokers import RedisProcess
from tests.support.clients import receive_json, send_json, sse_stream, websocket
from tests.support.server import ServerProcess

pytestmark = pytest.mark.redis

STREAM_URL = "redis-stream://127.0.0.1:6379"


@pytest.fixture
async def delete_streams(channel_prefix: str) -> AsyncIterator[None]:
    """Streams outlive the servers: remove this test's from the shared Redis."""
    yield
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{channel_prefix}*")]
        if keys:
            await client.delete(*keys)
        match = f"stream:{channel_prefix}*"
        marks = [field async for field, _ in client.hscan_iter(EPOCHS_KEY, match=match)]
        if marks:
            await client.hdel(EPOCHS_KEY, *marks)
    finally:
        await client.aclose()


@pytest.fixture
def two_servers(
    channel_prefix: str, delete_streams: None
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = {"BROKER_URL": STREAM_URL, "CHANNEL_PREFIX": channel_prefix}
    with (
        ServerProcess("tests.apps.core_app:app", env=env) as a,
        ServerProcess("tests.apps.core_app:app", env=env) as b,
    ):
        yield a, b


async def publish(server: ServerProcess, room: int, texts: list[str]) -> list[str]:
    """Publish over HTTP, one after the other; the ids the server gave the events."""
    ids = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for text in texts:
            answer = await http.post(f"/streams/publish/rooms/{room}", json={"text": text})
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])
    return ids


async def test_sse_client_resumes_on_another_process_with_every_missed_event_once(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_servers
    async with sse_stream(a.url, "/streams/sse/rooms/7") as first:
        await publish(a, 7, ["a", "b", "c"])
        seen = await first.wait_for(3)
    missed = await publish(a, 7, [f"missed {n}" for n in range(100)])

    headers = {"Last-Event-ID": seen[-1].id}
    async with sse_stream(b.url, "/streams/sse/rooms/7", headers=headers) as again:
        await again.wait_for(100)
        live = await publish(a, 7, ["live"])
        await again.wait_for(101)
        await asyncio.sleep(0.5)  # anything delivered twice would arrive meanwhile
        events = list(again.events)

    assert [event.id for event in events] == [*missed, *live]
    assert all(event.event == "message" for event in events), "history was complete: no gap"
    texts = [json.loads(event.data)["text"] for event in events]
    assert texts == [*(f"missed {n}" for n in range(100)), "live"]


async def test_websocket_subscribe_resumes_on_another_process(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_servers
    async with websocket(a.ws_url + "/streams/ws") as ws:
        await send_json(ws, {"type": "subscribe", "id": 1, "topic": "/rooms/8"})
        assert (await receive_json(ws))["type"] == "ack"
        first_ids = await publish(a, 8, ["x", "y"])
        seen = [await receive_json(ws), await receive_json(ws)]
    assert [event["id"] for event in seen] == first_ids
    missed = await publish(a, 8, [f"missed {n}" for n in range(100)])

    async with websocket(b.ws_url + "/streams/ws") as ws:
        subscribe = {"type": "subscribe", "id": 2, "topic": "/rooms/8"}
        await send_json(ws, {**subscribe, "last_event_id": seen[-1]["id"]})
        assert await receive_json(ws) == {"type": "ack", "id": 2}
        replayed = [await receive_json(ws) for _ in range(100)]
        live = await publish(a, 8, ["live"])
        after = await receive_json(ws)
        with pytest.raises(asyncio.TimeoutError):
            await receive_json(ws, timeout=0.5)  # nothing twice

    assert [message["type"] for message in replayed] == ["event"] * 100
    assert [message["id"] for message in replayed] == missed
    assert (after["type"], after["id"], after["data"]["text"]) == ("event", live[0], "live")


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    process = RedisProcess().start()
    try:
        yield process
    finally:
        process.stop()


async def healthy(server: ServerProcess) -> bool:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        return (await http.get("/streams/health")).status_code == 200


async def test_clients_receive_events_again_after_a_redis_restart(
    redis_process: RedisProcess,
) -> None:
    env = {"BROKER_URL": f"redis-stream://127.0.0.1:{redis_process.port}"}
    with ServerProcess("tests.apps.core_app:app", env=env) as server:
        async with (
            sse_stream(server.url, "/streams/sse/rooms/1") as sse,
            websocket(server.ws_url + "/streams/ws/rooms/1") as ws,
        ):
            await publish(server, 1, ["a"])
            await sse.wait_for(1)
            assert (await receive_json(ws))["text"] == "a"

            redis_process.stop()
            for _ in range(100):  # the process notices the loss (nothing is published meanwhile)
                if not await healthy(server):
                    break
                await asyncio.sleep(0.1)
            assert not await healthy(server), "the lost connection was not noticed"

            redis_process.start()
            for _ in range(100):
                if await healthy(server):
                    break
                await asyncio.sleep(0.1)
            assert await healthy(server), "the process did not reconnect"

            await publish(server, 1, ["b"])
            # Redis came back empty, so the stream cannot vouch for the outage: a gap first.
            events = await sse.wait_for(3)
            assert [e.event for e in events] == ["message", "gap", "message"]
            assert json.loads(events[-1].data)["text"] == "b"
            assert (await receive_json(ws))["type"] == "gap"
            assert (await receive_json(ws))["text"] == "b"
