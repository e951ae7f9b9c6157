from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.server import ServerProcess

pytest_plugins = ["tests.support.tansu"]  # the session's Kafka-protocol broker: tansu_broker

REDIS_URL = "redis://127.0.0.1:6379"
BROKERS = {
    "memory": "memory://",
    "redis": REDIS_URL,
}


@pytest.fixture(params=list(BROKERS), ids=list(BROKERS))
def broker_url(request: pytest.FixtureRequest) -> str:
    name = request.param
    if name == "redis":
        request.applymarker(pytest.mark.redis)
    return BROKERS[name]


@pytest.fixture
def channel_prefix() -> str:
    """Channels unique to one test, so tests sharing a real broker never see each other."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def server(broker_url: str, channel_prefix: str) -> Iterator[ServerProcess]:
    env = {"BROKER_URL": broker_url, "CHANNEL_PREFIX": channel_prefix}
    with ServerProcess("tests.apps.core_app:app", env=env) as running:
        yield running
