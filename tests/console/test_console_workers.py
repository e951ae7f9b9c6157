"""Analytics and the console across two worker processes on a Redis broker (real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from tests.console.support import SECRET, admin_headers, bearer, eventually, snapshot, token
from tests.support.clients import SSEClient, sse_stream
from tests.support.server import ServerProcess

pytestmark = pytest.mark.redis


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        "JWT_SECRET": SECRET,
        "BROKER_URL": "redis://127.0.0.1:6379/0",
        "STREAMS_NAMESPACE": f"console-test-{uuid.uuid4().hex[:8]}",
        "WEBSUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/websub.db",
    }
    with ServerProcess("docs_src.console.app:app", env=env, workers=2) as running:
        yield running


async def streams_on_both_workers(
    server: ServerProcess, stack: AsyncExitStack, sub: str
) -> list[SSEClient]:
    """Open streams of ``sub`` until both workers hold at least one (the kernel spreads new
    connections between the workers' sockets)."""
    streams: list[SSEClient] = []
    for _ in range(30):
        streams.append(
            await stack.enter_async_context(
                sse_stream(server.url, "/streams/sse/rooms/1", access_token=token(sub))
            )
        )
        board = await eventually(
            lambda: snapshot(server.url),
            lambda b: (
                len(b["workers"]) == 2 and sum(b["connections_by_worker"].values()) == len(streams)
            ),
            what="both workers' views",
        )
        if all(board["connections_by_worker"].values()):
            return streams
    raise AssertionError("thirty connections all went to one worker")


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as opened:
        yield opened


async def test_usage_and_live_figures_add_up_over_the_workers(
    server: ServerProcess, stack: AsyncExitStack
) -> None:
    streams = await streams_on_both_workers(server, stack, "bob")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        for n in range(5):
            answer = await http.post(
                "/streams/publish/rooms/1", json={"n": n}, headers=bearer("alice")
            )
            assert answer.status_code == 202
        for stream in streams:
            await stream.wait_for(5)

        async def totals() -> dict[str, dict[str, int]]:
            answer = await http.get(
                "/streams/admin/usage", params={"by": "principal"}, headers=admin_headers()
            )
            return {t["principal"]: t for t in answer.json()["totals"]}

        # Each worker stores its counts at its next flush (every 5 s), whichever one asks.
        usage = await eventually(
            totals,
            lambda t: t.get("bob", {}).get("delivered") == 5 * len(streams),
            timeout=30,
            what="bob's deliveries from both workers",
        )
    assert usage["alice"]["published"] == 5
    board = await snapshot(server.url)
    [bob] = [c for c in board["top_consumers"] if c["principal"] == "bob"]
    assert bob["connections"] == len(streams) and bob["delivered"] == 5 * len(streams)
    [rooms] = board["topics"]
    assert rooms["subscribers"] == len(streams)


async def test_disconnect_reaches_the_other_worker(
    server: ServerProcess, stack: AsyncExitStack
) -> None:
    streams = await streams_on_both_workers(server, stack, "mallory")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        answer = await http.post(
            "/streams/admin/principals/mallory/disconnect", headers=admin_headers()
        )
    assert answer.status_code == 200
    assert answer.json()["broadcast"] is True
    assert answer.json()["closed_here"] < len(streams)  # the rest were on the other worker
    await asyncio.wait_for(asyncio.gather(*(s.ended.wait() for s in streams)), 15)
    assert all(s.events[-1].event == "close" for s in streams)
