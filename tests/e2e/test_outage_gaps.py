"""After a lost broker connection, connected clients get the events they missed or a ``gap``.

The missed event is written straight into Redis by another connection while the worker cannot
be subscribed: Redis comes back asking for a password the worker does not have, the test writes
with it, then lifts it and lets the worker in. So the worker could not have received the event,
whatever the timing, and a pub/sub backend must say so to every client.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis import asyncio as aioredis
from websockets.asyncio.client import ClientConnection

from fastapi_streaming.events import Event
from tests.support.brokers import RedisProcess
from tests.support.clients import SSEClient, post, receive_json, sse_stream, websocket
from tests.support.server import ServerProcess

pytestmark = pytest.mark.redis

LOCK = "outage-lock"


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    process = RedisProcess().start()
    try:
        yield process
    finally:
        process.stop()


async def wait_healthy(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        for _ in range(200):
            if (await http.get("/streams/health")).status_code == 200:
                return
            await asyncio.sleep(0.1)
    raise AssertionError("the worker did not reconnect to Redis")


async def write_missed(redis: RedisProcess, scheme: str, channel: str) -> str:
    """Publish an event as another system would, straight into Redis; return its id."""
    event = Event.create("/rooms/1", {"text": "missed", "author": "elsewhere"})
    client = aioredis.Redis(host="127.0.0.1", port=redis.port, password=LOCK)
    try:
        if scheme == "redis":
            receivers = await client.publish(channel, event.to_message())
            assert receivers == 0, "the worker must not be subscribed yet"
        else:
            await client.xadd(channel, {"message": event.to_message()})
        await client.config_set("requirepass", "")  # now the worker may come back
    finally:
        await client.aclose()
    return event.id


async def sse_until_b(sse: SSEClient) -> list[tuple[str, dict[str, Any]]]:
    async def done() -> bool:
        return any(json.loads(e.data).get("text") == "b" for e in sse.events if e.data)

    for _ in range(100):
        if await done():
            break
        await sse.wait_for(len(sse.events) + 1)
    return [(e.event, json.loads(e.data)) for e in sse.events if e.data]


async def ws_until_b(ws: ClientConnection) -> list[dict[str, Any]]:
    received = []
    while not received or (received[-1].get("data") or {}).get("text") != "b":
        received.append(await receive_json(ws))
    return received


async def outage(
    redis: RedisProcess, scheme: str, *, restart: bool
) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]], str, str]:
    """Clients connected, event ``a``, an outage with a missed event, event ``b``.

    Returns what the SSE and WebSocket clients got, ``a``'s id and the missed event's id.
    """
    prefix = f"gaps-{uuid.uuid4().hex[:8]}."
    env = {"BROKER_URL": f"{scheme}://127.0.0.1:{redis.port}", "CHANNEL_PREFIX": prefix}
    with ServerProcess("tests.apps.core_app:app", env=env) as server:
        async with (
            sse_stream(server.url, "/streams/sse/rooms/1") as sse,
            websocket(server.ws_url + "/streams/ws/rooms/1?envelope=true") as ws,
        ):
            published = await post(server.url, "/streams/publish/rooms/1", json={"text": "a"})
            assert published.status_code == 202
            first_id = (await sse.wait_for(1))[0].id
            assert (await receive_json(ws))["id"] == first_id

            if restart:  # Redis comes back empty, asking for a password the worker lacks
                redis.stop()
                redis.password = LOCK
                redis.start()
                redis.password = None
            else:  # the worker's connections are cut; the data stays
                admin = aioredis.Redis(host="127.0.0.1", port=redis.port)
                await admin.config_set("requirepass", LOCK)
                await admin.execute_command("CLIENT", "KILL", "TYPE", "normal")
                await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
                await admin.aclose()
            missed_id = await write_missed(redis, scheme, prefix + "rooms.1")
            await wait_healthy(server)

            published = await post(server.url, "/streams/publish/rooms/1", json={"text": "b"})
            assert published.status_code == 202
            return await sse_until_b(sse), await ws_until_b(ws), first_id, missed_id


def check_gap(gap: dict[str, Any], first_id: str) -> None:
    assert gap["topic"] == "/rooms/1"
    assert gap["last_event_id"] == first_id
    assert "broker was lost" in gap["detail"]


async def test_pubsub_clients_get_a_gap_for_what_the_outage_lost(
    redis_process: RedisProcess,
) -> None:
    sse, ws, first_id, _ = await outage(redis_process, "redis", restart=True)

    assert [name for name, _ in sse] == ["message", "gap", "message"]
    check_gap(sse[1][1], first_id)
    assert [data.get("text") for _, data in sse] == ["a", None, "b"]

    assert [message["type"] for message in ws] == ["gap", "event"]
    check_gap(ws[0], first_id)
    assert ws[1]["data"]["text"] == "b"


async def test_redis_streams_deliver_what_a_cut_connection_missed(
    redis_process: RedisProcess,
) -> None:
    sse, ws, _, missed_id = await outage(redis_process, "redis-stream", restart=False)

    assert [name for name, _ in sse] == ["message", "message", "message"], "no gap"
    assert [data["text"] for _, data in sse] == ["a", "missed", "b"]
    assert (ws[0]["type"], ws[0]["id"]) == ("event", missed_id)
    assert [message["data"]["text"] for message in ws] == ["missed", "b"]


async def test_redis_streams_restarted_empty_give_a_gap_then_what_they_hold(
    redis_process: RedisProcess,
) -> None:
    sse, ws, first_id, missed_id = await outage(redis_process, "redis-stream", restart=True)

    assert [name for name, _ in sse] == ["message", "gap", "message", "message"]
    check_gap(sse[1][1], first_id)
    assert [data.get("text") for _, data in sse] == ["a", None, "missed", "b"]
    assert [message["type"] for message in ws] == ["gap", "event", "event"]
    check_gap(ws[0], first_id)
    assert ws[1]["id"] == missed_id
