"""A derived topic on Redis Streams reads a new source stream from the moment its first owner
started: the entries of that very millisecond included, those before it not."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from fastapi_streaming.processing.stream_feed import StreamFeed

pytestmark = pytest.mark.redis

URL = "redis://127.0.0.1:6379"


class Fence:
    """What the feed needs of its lease to load a checkpoint; nothing is committed here."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fence(self) -> tuple[str, str, str, str]:
        raise AssertionError("the test commits nothing")


async def test_an_entry_of_the_origins_own_millisecond_is_read() -> None:
    name = f"test-origin-{uuid.uuid4().hex}"
    feed = StreamFeed(URL, Fence(name), [name])
    client = Redis.from_url(URL)
    try:
        origin = (await feed.load()).origin_ms
        await client.xadd(name, {"message": "before"}, id=f"{origin - 1}-7")
        await client.xadd(name, {"message": "at the origin"}, id=f"{origin}-0")
        await client.xadd(name, {"message": "after"}, id=f"{origin}-1")

        entries, positions = await anext(feed.batches())

        assert [message for _, message in entries] == ["at the origin", "after"]
        assert positions == {name: f"{origin}-1"}
    finally:
        await client.delete(name, feed.key)
        await client.aclose()
        await feed.close()
