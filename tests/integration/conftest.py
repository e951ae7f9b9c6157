"""Fixtures shared by the integration tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.conftest import REDIS_URL


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    """A namespace of its own for a test's plan counters in the shared Redis, removed after."""
    name = f"test-limits-{uuid.uuid4().hex[:8]}"
    yield name
    redis = Redis.from_url(REDIS_URL)
    async for key in redis.scan_iter(match=f"*{name}*"):
        await redis.delete(key)
    await redis.aclose()
