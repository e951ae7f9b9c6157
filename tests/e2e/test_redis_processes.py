"""Several server processes sharing the real Redis behave as one Streaming API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from redis import asyncio as redis

from tests.conftest import REDIS_URL
from tests.support.clients import post, receive_json, send_json, sse_stream, websocket
from tests.support.server import ServerProcess

pytestmark = pytest.mark.redis


@pytest.fixture
def two_servers(channel_prefix: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = {"BROKER_URL": REDIS_URL, "CHANNEL_PREFIX": channel_prefix}
    with (
        ServerProcess("tests.apps.core_app:app", env=env) as a,
        ServerProcess("tests.apps.core_app:app", env=env) as b,
    ):
        yield a, b


async def test_event_published_on_one_process_reaches_clients_of_the_other_with_one_id(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_servers
    async with (
        sse_stream(a.url, "/streams/sse/rooms/5") as sse_a,
        sse_stream(b.url, "/streams/sse/rooms/5") as sse_b,
        websocket(b.ws_url + "/streams/ws/rooms/5") as ws_b,
        websocket(b.ws_url + "/streams/ws") as mux_b,
    ):
        await send_json(mux_b, {"type": "subscribe", "id": 1, "topic": "/rooms/5"})
        assert (await receive_json(mux_b))["type"] == "ack"
        answer = await post(a.url, "/streams/publish/rooms/5", json={"text": "across"})
        event_id = answer.json()["id"]

        (on_a,) = await sse_a.wait_for(1)
        (on_b,) = await sse_b.wait_for(1)
        ws_data = await receive_json(ws_b)
        mux_event = await receive_json(mux_b)

    assert on_a.id == on_b.id == mux_event["id"] == event_id
    expected = {"text": "across", "author": "anonymous@room-5"}
    assert json.loads(on_b.data) == ws_data == mux_event["data"] == expected


async def test_raw_json_written_by_another_system_reaches_clients_on_every_process(
    two_servers: tuple[ServerProcess, ServerProcess], channel_prefix: str
) -> None:
    a, b = two_servers
    async with (
        sse_stream(a.url, "/streams/sse/alerts") as sse_a,
        sse_stream(b.url, "/streams/sse/alerts") as sse_b,
    ):
        client = redis.Redis.from_url(REDIS_URL)
        try:
            await client.publish(channel_prefix + "alerts", b'{"level": "raw"}')
        finally:
            await client.aclose()
        (on_a,) = await sse_a.wait_for(1)
        (on_b,) = await sse_b.wait_for(1)
    assert json.loads(on_a.data) == {"level": "raw"}
    assert on_a.id == on_b.id, "the same raw message gets the same id on every process"


async def test_each_process_subscribes_once_per_channel(
    two_servers: tuple[ServerProcess, ServerProcess], channel_prefix: str
) -> None:
    a, b = two_servers
    client = redis.Redis.from_url(REDIS_URL)
    channel = channel_prefix + "stocks.NVDA"
    try:
        async with (
            sse_stream(a.url, "/streams/sse/stocks/NVDA"),
            sse_stream(a.url, "/streams/sse/stocks/NVDA"),
            sse_stream(a.url, "/streams/sse/stocks/NVDA"),
            sse_stream(b.url, "/streams/sse/stocks/NVDA"),
        ):
            counts = await client.pubsub_numsub(channel)
            assert counts == [(channel.encode(), 2)], "one subscription per process"
        for _ in range(50):
            counts = await client.pubsub_numsub(channel)
            if counts == [(channel.encode(), 0)]:
                break
            await asyncio.sleep(0.05)
        assert counts == [(channel.encode(), 0)], "released with the last client"
    finally:
        await client.aclose()
