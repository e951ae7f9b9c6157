from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings

from tests.support.server import ServerProcess

# Property-based tests are bounded: the "ci" profile (the default) keeps every fuzz test to a
# few seconds so `make test` stays short; HYPOTHESIS_PROFILE=deep searches 20 times longer.
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=timedelta(seconds=5),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("deep", max_examples=1200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

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
