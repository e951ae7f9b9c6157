"""Clients that stop reading cannot hold up the others or grow the server's memory."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from tests.support.clients import sse_stream, websocket
from tests.support.server import ServerProcess

EVENTS = 10_000
EVENT_SIZE = 1_000
QUEUE = 1000


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    env = {"BROKER_URL": "memory://", "MAX_QUEUE": str(QUEUE)}
    with ServerProcess("tests.apps.core_app:app", env=env) as running:
        yield running


def stalled_client(port: int, request: bytes) -> socket.socket:
    """A client that sends its request, reads the response head, then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    head = b""
    sock.settimeout(10)
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.split(b" ")[1] in (b"200", b"101"), head
    return sock


def sse_request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()


def ws_request(path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: c2xvdyBjbGllbnQgdGVzdA==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def closed_by_server(sock: socket.socket, timeout: float = 20) -> bool:
    """Read what the server had sent until end of stream; True when the server closed."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    return True


async def stats(server: ServerProcess) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return (await http.get("/test/stats")).json()["fanout"]  # type: ignore[no-any-return]


async def wait_clients(server: ServerProcess, address: str, count: int) -> None:
    for _ in range(100):
        stream = (await stats(server))["streams"].get(address)
        if stream and stream["clients"] == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{address} never had {count} clients")


async def burst(server: ServerProcess, address: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
        answer = await http.post(
            "/test/burst", params={"address": address, "count": EVENTS, "size": EVENT_SIZE}
        )
    assert answer.status_code == 200


async def read_all_sse(server: ServerProcess, path: str, ready: asyncio.Event) -> list[int]:
    async with sse_stream(server.url, path) as stream:
        ready.set()
        await stream.wait_for(EVENTS, timeout=120)
        return [item["seq"] for item in stream.data()]


async def read_all_ws(server: ServerProcess, path: str, ready: asyncio.Event) -> list[int]:
    async with websocket(server.ws_url + path, max_size=None) as ws:
        ready.set()
        return [json.loads(await ws.recv())["seq"] for _ in range(EVENTS)]


@pytest.mark.parametrize(
    ("address", "policy"), [("/strict/a", "disconnect"), ("/bulk/a", "drop_oldest")]
)
async def test_stalled_clients_do_not_slow_others_or_grow_memory(
    server: ServerProcess, address: str, policy: str
) -> None:
    ready = [asyncio.Event(), asyncio.Event()]
    readers = [
        asyncio.create_task(read_all_sse(server, "/streams/sse" + address, ready[0])),
        asyncio.create_task(read_all_ws(server, "/streams/ws" + address, ready[1])),
    ]
    for event in ready:
        await asyncio.wait_for(event.wait(), 10)
    stalled = [
        stalled_client(server.port, sse_request("/streams/sse" + address)),
        stalled_client(server.port, ws_request("/streams/ws" + address)),
    ]
    try:
        await wait_clients(server, address, 4)
        rss_before = server.rss()
        started = time.monotonic()
        await burst(server, address)
        fast_sse, fast_ws = await asyncio.wait_for(asyncio.gather(*readers), 120)
        elapsed = time.monotonic() - started
        rss_growth = server.rss() - rss_before
        hub = await stats(server)

        # The readers got every event, in order, and quickly: nobody waited for the stalled.
        assert fast_sse == list(range(EVENTS))
        assert fast_ws == list(range(EVENTS))
        assert elapsed < 60
        # 10,000 events of 1 kB went by; stalled clients hold at most QUEUE of them each.
        assert rss_growth < 12 * 1024 * 1024, f"server grew by {rss_growth / 2**20:.1f} MiB"
        if policy == "disconnect":
            assert all(closed_by_server(sock) for sock in stalled)
        else:
            # The readers have left; the stalled clients are still connected, and each of their
            # events is accounted for: handed to the socket, still queued (at most QUEUE each),
            # or dropped and counted.
            assert hub["streams"][address]["clients"] == 2
            assert hub["pending"] <= 2 * QUEUE
            assert hub["dropped"] > EVENTS
            assert hub["delivered"] + hub["pending"] + hub["dropped"] == 2 * EVENTS
    finally:
        for sock in stalled:
            sock.close()


def connected_to(server: ServerProcess, client_port: int) -> bool:
    """Whether the server process still holds a TCP connection from this client port."""
    connections = psutil.Process(server.pid).net_connections(kind="tcp")
    return any(conn.raddr and conn.raddr.port == client_port for conn in connections)


def read_to_the_end(sock: socket.socket, timeout: float) -> tuple[bytes, str]:
    """Everything the client can still read, and how the stream ended: eof, reset or timeout."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        return data, "reset"
    except TimeoutError:
        return data, "timeout"
    return data, "eof"


async def wait_dropped(server: ServerProcess, address: str, timeout: float = 60) -> None:
    """Until the hub has no client on ``address`` (its only client was dropped)."""
    deadline = time.monotonic() + timeout
    while address in (await stats(server))["streams"]:
        assert time.monotonic() < deadline, f"nobody was dropped from {address}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_a_dropped_client_that_never_reads_is_disconnected_within_seconds(
    server: ServerProcess, transport: str
) -> None:
    """The connection does not stay open with megabytes queued: the server aborts it."""
    address = f"/strict/never-reads-{transport}"
    request = sse_request if transport == "sse" else ws_request
    sock = stalled_client(server.port, request(f"/streams/{transport}{address}"))
    try:
        port = sock.getsockname()[1]
        await wait_clients(server, address, 1)
        publishing = asyncio.create_task(burst(server, address))
        await wait_dropped(server, address)
        dropped = time.monotonic()
        while connected_to(server, port) and time.monotonic() - dropped < 20:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        assert not connected_to(server, port), "the server kept the connection for 20 s"
        assert time.monotonic() - dropped < 20
        await publishing
        _, ending = await asyncio.to_thread(read_to_the_end, sock, 5)
        assert ending in ("reset", "eof")
    finally:
        sock.close()


async def test_a_dropped_client_that_reads_again_gets_a_close_event(
    server: ServerProcess,
) -> None:
    """A client that takes its data within the grace period sees why the stream ended."""
    address = "/strict/reads-late"
    sock = stalled_client(server.port, sse_request("/streams/sse" + address))
    try:
        await wait_clients(server, address, 1)
        publishing = asyncio.create_task(burst(server, address))
        await wait_dropped(server, address)
        data, ending = await asyncio.to_thread(read_to_the_end, sock, 10)
        await publishing
    finally:
        sock.close()
    assert ending == "eof"
    assert b'event: close\ndata: {"reason":"slow_client"' in data
