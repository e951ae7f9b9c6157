"""NATSBackend against the real NATS server (JetStream enabled) on 127.0.0.1:4222.

The restart tests stop and kill a NATS server of the session's own instead, with JetStream
storing its streams in a temporary folder, so they survive the restart as on a real server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import nats
import nats.js.errors
import pytest
import pytest_asyncio
from fastapi_streaming.testing import BackendConformance, BrokerControl, NativePublish
from fastapi_streaming.testing.private_brokers import private_nats, session_broker
from fastapi_streaming.testing.processes import BrokerAt, PrivateBroker

from fastapi_streaming_nats import NATSBackend

NATS_URL = "nats://127.0.0.1:4222"


@pytest.fixture(scope="session")
def nats_server() -> Iterator[PrivateBroker]:
    """A NATS server with JetStream of this session's own, which the restart tests stop."""
    with session_broker(private_nats) as broker:
        yield broker


class TestCoreNATS(BackendConformance):
    url = NATS_URL
    factory = NATSBackend

    @pytest.fixture
    def broker_control(self, nats_server: PrivateBroker) -> BrokerControl:
        return nats_server.start_now()  # a no-op unless an earlier test left it down

    @pytest.fixture
    def native_publish(self) -> NativePublish:
        async def publish(channel: str, payload: bytes) -> None:
            nc = await nats.connect(NATS_URL)
            try:
                await nc.publish(channel, payload)
                await nc.flush()
            finally:
                await nc.close()

        return publish


class TestJetStream(BackendConformance):
    """Each test gets its own stream and subject prefix, deleted afterwards."""

    factory = NATSBackend

    @pytest.fixture
    def names(self) -> tuple[str, str]:
        tag = uuid.uuid4().hex[:12]
        return f"CONFORMANCE_{tag}", f"conformance_{tag}"

    @pytest.fixture
    def broker_url(self, names: tuple[str, str]) -> str:
        stream, prefix = names
        return f"{NATS_URL}?stream={stream}&prefix={prefix}&max_age=600"

    @pytest.fixture
    def broker_control(self, nats_server: PrivateBroker, names: tuple[str, str]) -> BrokerControl:
        """The same stream options on the private server, whose folder keeps the stream."""
        stream, prefix = names
        nats_server.start_now()
        return BrokerAt(nats_server, f"{nats_server.url}?stream={stream}&prefix={prefix}")

    @pytest_asyncio.fixture(autouse=True)
    async def delete_stream(self, names: tuple[str, str]) -> AsyncIterator[None]:
        """Set up first, so torn down last: after the backends have disconnected."""
        stream, _ = names
        yield
        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().delete_stream(stream)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await nc.close()

    @pytest.fixture
    def native_publish(self, names: tuple[str, str]) -> NativePublish:
        stream, prefix = names

        async def publish(channel: str, payload: bytes) -> None:
            nc = await nats.connect(NATS_URL)
            try:
                await nc.jetstream().publish(f"{prefix}.{channel}", payload, stream=stream)
            finally:
                await nc.close()

        return publish
