"""Derived topics on NATS JetStream: three server processes elect one owner through a KV
bucket; SIGKILL it mid-window, and another replays the stream from the checkpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.clients import SSEClient, post, sse_stream
from tests.support.server import ServerProcess

nats = pytest.importorskip("nats")
pytest.importorskip("fastapi_streaming_nats")

ADDRESS = "/streams/sse/clicks/home/per-second"


@pytest.fixture
async def jetstream_url() -> AsyncIterator[str]:
    """A stream and prefix of this test's own; the stream and its KV buckets are deleted after."""
    import nats.js.errors

    tag = uuid.uuid4().hex[:12]
    stream = f"E2E_{tag}"
    yield f"nats://127.0.0.1:4222?stream={stream}&prefix=e2e_{tag}&max_age=600"
    client = await nats.connect("nats://127.0.0.1:4222")
    js = client.jetstream()
    try:
        for bucket in (f"{stream}_LEASES", f"{stream}_CHECKPOINTS"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_key_value(bucket)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(stream)
    finally:
        await client.close()


async def clicks(server: ServerProcess, second: float) -> None:
    for offset in (0.1, 0.2):
        answer = await post(
            server.url, "/streams/publish/clicks/home", json={"user": "u", "ts": second + offset}
        )
        assert answer.status_code == 202


def counts(client: SSEClient) -> list[tuple[str, dict[str, Any]]]:
    return [(event.id, json.loads(event.data)) for event in client.events if event.data]


async def test_on_jetstream_the_owner_killed_mid_window_loses_nothing(
    jetstream_url: str, channel_prefix: str
) -> None:
    """The window's result counts every click, those the dead owner had read and checkpointed
    included, and is emitted once: the new owner restores the state and reads on after it."""
    env = {"BROKER_URL": jetstream_url, "CHANNEL_PREFIX": channel_prefix}
    base = float(int(time.time()) - 1000)
    with (
        ServerProcess("tests.apps.processing_app:app", env=env) as a,
        ServerProcess("tests.apps.processing_app:app", env=env) as b,
        ServerProcess("tests.apps.processing_app:app", env=env) as c,
    ):
        servers = [a, b, c]
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(sse_stream(server.url, ADDRESS))
                for server in servers
            ]
            await clicks(a, base)
            await clicks(b, base + 1)  # closes the first second: it names the owner
            await clients[2].wait_for(1)
            ((_, first),) = counts(clients[2])
            assert first["count"] == 2
            (owner,) = [server for server in servers if server.pid == first["by"]]
            survivors = [server for server in servers if server is not owner]
            watcher = clients[servers.index(survivors[0])]

            # The second window [base + 1, base + 2) holds two clicks; two more come after
            # the kill. Give the owner time to read (and checkpoint) the first two.
            await asyncio.sleep(1.0)
            owner.stop(signal.SIGKILL)
            await clicks(survivors[0], base + 1.5)
            await clicks(survivors[1], base + 2)  # the next second, which closes it

            async def counted() -> None:
                while not any(d["start"] == base + 1 for _, d in counts(watcher)):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(counted(), 20)  # lease of 3 s, tried every second
            await asyncio.sleep(1.0)  # time for a duplicate, if there were one
            results = counts(watcher)
    starts = [d["start"] for _, d in results]
    assert len(starts) == len(set(starts))  # no window emitted twice (nor replayed from scratch)
    second = [d for _, d in results if d["start"] == base + 1]
    assert second == [{"page": "home", "start": base + 1, "count": 4, "by": second[0]["by"]}]
    assert second[0]["by"] != owner.pid  # computed by the new owner, from the checkpoint
