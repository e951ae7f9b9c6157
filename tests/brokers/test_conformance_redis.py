"""The Redis pub/sub backend passes the conformance suite against the real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import asyncio as aioredis

from fastapi_streaming.brokers.redis import RedisBackend
from fastapi_streaming.testing import BackendConformance, BrokerControl, NativePublish
from tests.support.redis_control import private_redis

REDIS = "redis://127.0.0.1:6379"


@pytest.mark.redis
class TestRedisBackend(BackendConformance):
    url = REDIS
    factory = RedisBackend

    @pytest.fixture
    def native_publish(self) -> NativePublish:
        async def publish(channel: str, payload: bytes) -> None:
            client = aioredis.Redis.from_url(REDIS)
            try:
                await client.publish(channel, payload)
            finally:
                await client.aclose()

        return publish

    @pytest.fixture
    def broker_control(self) -> Iterator[BrokerControl]:
        with private_redis("redis") as control:
            yield control
