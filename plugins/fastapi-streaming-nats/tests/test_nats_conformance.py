"""NATSBackend against the real NATS server (JetStream enabled) on 127.0.0.1:4222.

The restart tests stop and kill a NATS server of the session's own instead, with JetStream
storing its streams in a temporary folder, so they survive the restart as on a real server.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import nats.js.errors
import pytest
import pytest_asyncio
from fastapi_streaming.testing import BackendConformance, BrokerControl, NativePublish
from fastapi_streaming.testing.processes import BrokerAt, PrivateBroker, free_port

from fastapi_streaming_nats import NATSBackend

NATS_URL = "nats://127.0.0.1:4222"


@pytest.fixture(scope="session")
def private_nats() -> Iterator[PrivateBroker]:
    """A NATS server with JetStream of this session's own, which the restart tests stop."""
    binary = shutil.which("nats-server") or shutil.which("/usr/sbin/nats-server")
    if binary is None:
        pytest.skip("no nats-server binary for the restart tests: apt-get install nats-server")
    folder = Path(tempfile.mkdtemp(prefix="fastapi-streaming-nats-"))
    port = free_port()
    broker = PrivateBroker(
        "nats-server",
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(folder)],
        port=port,
        url=f"nats://127.0.0.1:{port}",
        log_dir=folder,
    )
    try:
        yield broker.start_now()
    finally:
        broker.stop_now()
        shutil.rmtree(folder, ignore_errors=True)


class TestCoreNATS(BackendConformance):
    url = NATS_URL
    factory = NATSBackend

    @pytest.fixture
    def broker_control(self, private_nats: PrivateBroker) -> BrokerControl:
        return private_nats.start_now()  # a no-op unless an earlier test left it down

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
    def broker_control(self, private_nats: PrivateBroker, names: tuple[str, str]) -> BrokerControl:
        """The same stream options on the private server, whose folder keeps the stream."""
        stream, prefix = names
        private_nats.start_now()
        return BrokerAt(private_nats, f"{private_nats.url}?stream={stream}&prefix={prefix}")

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
