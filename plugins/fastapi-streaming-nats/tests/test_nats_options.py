"""URL options of the NATS backend, and what JetStream mode keeps, on real NATS servers."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import nats
import pluggy
import pytest
from fastapi_streaming.brokers import hookspecs

from fastapi_streaming_nats import NATSBackend, NATSOptions

NATS_URL = "nats://127.0.0.1:4222"


def test_core_nats_by_default() -> None:
    options = NATSOptions.from_url("nats://u:p@nats.example:4333")
    assert options.server == "nats://u:p@nats.example:4333"
    assert not options.jetstream and options.prefix == ""
    assert options.subject("stocks.AAPL") == "stocks.AAPL"


def test_jetstream_defaults() -> None:
    options = NATSOptions.from_url("nats://127.0.0.1?jetstream=true")
    assert options.jetstream and options.stream == "FASTAPI_STREAMING"
    assert options.subject("stocks.AAPL") == "fastapi_streaming.stocks.AAPL"
    assert options.stream_subjects == ["fastapi_streaming.>"]
    assert options.max_age == 86_400


def test_a_stream_name_implies_jetstream() -> None:
    options = NATSOptions.from_url("nats://127.0.0.1?stream=MARKET&prefix=market&max_age=0")
    assert (options.stream, options.prefix, options.max_age) == ("MARKET", "market", 0)
    assert options.subject("quotes.AAPL") == "market.quotes.AAPL"


@pytest.mark.parametrize(
    "url",
    [
        "redis://h",
        "nats://h?jetstream=perhaps",
        "nats://h?colour=blue",
        "nats://h?stream=a.b",
        "nats://h?prefix=a.*",
        "nats://h?max_age=-1",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        NATSOptions.from_url(url)


@pytest.mark.parametrize("channel", ["", "a..b", "a.*", "a.>", "a b", ".a"])
def test_channels_nats_would_misread_are_refused(channel: str) -> None:
    with pytest.raises(ValueError):
        NATSOptions.from_url(NATS_URL).subject(channel)


def test_the_entry_point_registers_the_scheme() -> None:
    (entry_point,) = [ep for ep in entry_points(group="fastapi_streaming") if ep.name == "nats"]
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(entry_point.load())
    (backends,) = manager.hook.fastapi_streaming_backends()
    assert backends == {"nats": NATSBackend}


async def test_jetstream_mode_creates_the_stream_and_keeps_history() -> None:
    tag = uuid.uuid4().hex[:12]
    stream, prefix = f"HISTORY_{tag}", f"history_{tag}"
    backend = NATSBackend(f"{NATS_URL}?stream={stream}&prefix={prefix}&max_age=600")
    await backend.connect()
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    try:
        for price in (1, 2, 3):  # nobody subscribes: core NATS would drop these
            await backend.publish("stocks.AAPL", f'{{"price": {price}}}')
        info = await js.stream_info(stream)
        assert info.config.subjects == [f"{prefix}.>"]
        assert info.config.max_age == 600
        assert info.state.messages == 3
        last = await js.get_last_msg(stream, f"{prefix}.stocks.AAPL")
        assert last.data == b'{"price": 3}'
    finally:
        await backend.disconnect()
        await js.delete_stream(stream)
        await nc.close()


async def test_an_existing_stream_is_used_as_it_is() -> None:
    tag = uuid.uuid4().hex[:12]
    stream, prefix = f"OWNED_{tag}", f"owned_{tag}"
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{prefix}.quotes.>"], max_msgs=5)
    backend = NATSBackend(f"{NATS_URL}?stream={stream}&prefix={prefix}")
    await backend.connect()
    try:
        await backend.publish("quotes.AAPL", "stored")
        assert (await js.stream_info(stream)).config.max_msgs == 5
        with pytest.raises(ConnectionError, match="does not capture it"):
            await backend.publish("orders.1", "not captured by the owner's stream")
    finally:
        await backend.disconnect()
        await js.delete_stream(stream)
        await nc.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OwnServer:
    """A nats-server process of our own on a free port, started and stopped by PID."""

    def __init__(self, config_dir: Path, extra_config: str = "") -> None:
        self.port = _free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.config = config_dir / "nats.conf"
        self.config.write_text(f"listen: 127.0.0.1:{self.port}\n{extra_config}")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.process = subprocess.Popen([binary, "-c", str(self.config)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"nats-server did not listen on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[OwnServer]:
    server = OwnServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def small_payload_server(tmp_path: Path) -> Iterator[str]:
    """A NATS server of our own whose max_payload is 1 KiB."""
    server = OwnServer(tmp_path, "max_payload: 1024\n")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def test_subscriptions_survive_a_server_restart(own_server: OwnServer) -> None:
    backend = NATSBackend(f"{own_server.url}?reconnect_wait=0.2")
    await backend.connect()
    try:
        await backend.subscribe("stocks.AAPL")
        await asyncio.to_thread(own_server.stop)
        await asyncio.to_thread(own_server.start)
        deadline = asyncio.get_running_loop().time() + 15
        event = None
        while event is None:  # publish until the reconnected subscription delivers
            assert asyncio.get_running_loop().time() < deadline, "no delivery after restart"
            try:
                await backend.publish("stocks.AAPL", "after restart")
                event = await asyncio.wait_for(backend.next_published(), timeout=0.5)
            except asyncio.TimeoutError:
                continue
            except ConnectionError:  # publish: still reconnecting
                await asyncio.sleep(0.05)
        assert (event.channel, event.message) == ("stocks.AAPL", "after restart")
    finally:
        await backend.disconnect()


async def test_a_server_gone_for_good_ends_the_listener_with_an_error(
    own_server: OwnServer,
) -> None:
    backend = NATSBackend(f"{own_server.url}?reconnect_attempts=2&reconnect_wait=0.1")
    await backend.connect()
    try:
        await backend.subscribe("stocks.AAPL")
        await asyncio.to_thread(own_server.stop)
        with pytest.raises(ConnectionError, match="closed"):
            await asyncio.wait_for(backend.next_published(), timeout=15)
    finally:
        await backend.disconnect()


async def test_a_message_over_max_payload_is_refused_with_the_limit(
    small_payload_server: str,
) -> None:
    backend = NATSBackend(small_payload_server)
    await backend.connect()
    try:
        with pytest.raises(ValueError, match="max_payload size limit of 1024 bytes"):
            await backend.publish("big", "x" * 1025)
        await backend.subscribe("small")
        await backend.publish("small", "x" * 1024)
        event = await backend.next_published()
        assert (event.channel, len(event.message)) == ("small", 1024)
    finally:
        await backend.disconnect()


async def test_publishing_while_reconnecting_raises_at_once(own_server: OwnServer) -> None:
    """No silent buffering through an outage: the publisher must learn of it (HTTP 503)."""
    backend = NATSBackend(f"{own_server.url}?reconnect_wait=0.2")
    await backend.connect()
    try:
        await asyncio.to_thread(own_server.stop)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectionError, match="unreachable"):
            await asyncio.wait_for(backend.publish("stocks.AAPL", "lost"), timeout=5)
        assert loop.time() - started < 1, "publishing during an outage must not wait"
    finally:
        await asyncio.to_thread(own_server.start)
        await backend.disconnect()
