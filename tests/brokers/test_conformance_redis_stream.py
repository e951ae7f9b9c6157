"""The Redis Streams backend passes the conformance suite against the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from redis import asyncio as aioredis

from fastapi_streaming.brokers.redis_stream import RedisStreamBackend
from fastapi_streaming.testing import BackendConformance, BrokerControl, NativePublish
from tests.support.redis_control import private_redis

REDIS = "redis://127.0.0.1:6379"


@pytest.mark.redis
class TestRedisStreamBackend(BackendConformance):
    url = "redis-stream://127.0.0.1:6379"
    factory = RedisStreamBackend

    @pytest_asyncio.fixture(autouse=True)
    async def delete_streams(self, base: str) -> AsyncIterator[None]:
        """Streams outlive their readers: remove this test's from the shared Redis."""
        yield
        client = aioredis.Redis.from_url(REDIS)
        try:
            keys = [key async for key in client.scan_iter(match=f"{base}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    @pytest.fixture
    def native_publish(self) -> NativePublish:
        async def publish(channel: str, payload: bytes) -> None:
            client = aioredis.Redis.from_url(REDIS)
            try:
                await client.xadd(channel, {"message": payload})
            finally:
                await client.aclose()

        return publish

    @pytest.fixture
    def broker_control(self) -> Iterator[BrokerControl]:
        with private_redis("redis-stream") as control:
            yield control
