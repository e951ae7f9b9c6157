"""Three server processes on Redis compute a derived topic once, and hand it over when the
owner is killed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Iterator

import pytest

from tests.conftest import REDIS_URL
from tests.support.clients import SSEClient, post, sse_stream
from tests.support.server import ServerProcess

pytestmark = pytest.mark.redis

ADDRESS = "/streams/sse/clicks/home/per-second"


@pytest.fixture
def three_servers(channel_prefix: str) -> Iterator[list[ServerProcess]]:
    env = {"BROKER_URL": REDIS_URL, "CHANNEL_PREFIX": channel_prefix}
    with (
        ServerProcess("tests.apps.processing_app:app", env=env) as a,
        ServerProcess("tests.apps.processing_app:app", env=env) as b,
        ServerProcess("tests.apps.processing_app:app", env=env) as c,
    ):
        yield [a, b, c]


async def clicks(server: ServerProcess, second: float) -> None:
    for offset in (0.1, 0.2):
        answer = await post(
            server.url, "/streams/publish/clicks/home", json={"user": "u", "ts": second + offset}
        )
        assert answer.status_code == 202


def counts(client: SSEClient) -> list[dict[str, float]]:
    return [json.loads(event.data) for event in client.events if event.data]


async def test_the_owner_is_killed_and_another_process_takes_over_within_seconds(
    three_servers: list[ServerProcess],
) -> None:
    base = float(int(time.time()) - 1000)
    async with (
        sse_stream(three_servers[0].url, ADDRESS) as on_a,
        sse_stream(three_servers[1].url, ADDRESS) as on_b,
        sse_stream(three_servers[2].url, ADDRESS) as on_c,
    ):
        await clicks(three_servers[0], base)
        await clicks(three_servers[1], base + 1)  # closes the first second
        await on_a.wait_for(1)
        (first,) = counts(on_a)
        assert first == {"page": "home", "start": base, "count": 2, "by": first["by"]}
        (owner,) = [server for server in three_servers if server.pid == first["by"]]
        survivors = [server for server in three_servers if server is not owner]
        watcher = {id(three_servers[i]): c for i, c in enumerate((on_a, on_b, on_c))}[
            id(survivors[0])
        ]

        owner.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        second = base + 2
        # Clicks go on; the first windows after the kill have no owner to count them.
        while time.monotonic() - killed_at < 20:
            await clicks(survivors[second % 2 == 0], second)
            second += 1
            if any(c["by"] != owner.pid for c in counts(watcher)):
                break
            await asyncio.sleep(0.5)
        taken_over = time.monotonic() - killed_at
        await clicks(survivors[0], second)
        await clicks(survivors[1], second + 1)  # closes `second`, computed by the new owner

        async def counted() -> None:
            while not any(c["start"] == second for c in counts(watcher)):  # noqa: ASYNC110
                await asyncio.sleep(0.05)

        await asyncio.wait_for(counted(), 10)
        await asyncio.sleep(0.5)  # time for a second owner to emit duplicates, if there were one
        results = counts(watcher)

    assert taken_over < 10  # lease of 3 s, tried every second
    new_owners = {c["by"] for c in results[1:]}
    assert len(new_owners) == 1 and owner.pid not in new_owners
    starts = [c["start"] for c in results]
    assert len(starts) == len(set(starts))  # no window emitted twice
    (last,) = [c for c in results if c["start"] == second]
    assert last == {"page": "home", "start": second, "count": 2, "by": new_owners.pop()}


async def test_on_redis_streams_the_owner_killed_mid_window_loses_nothing(
    channel_prefix: str,
) -> None:
    """SIGKILL the owner in the middle of a window: the window's result is emitted once, by
    the new owner, and counts every click, those the old owner had seen included."""
    env = {
        "BROKER_URL": REDIS_URL.replace("redis://", "redis-stream://"),
        "CHANNEL_PREFIX": channel_prefix,
    }
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
            (first,) = counts(clients[2])
            assert first["count"] == 2
            (owner,) = [server for server in servers if server.pid == first["by"]]
            survivors = [server for server in servers if server is not owner]
            watcher = clients[servers.index(survivors[0])]

            # The second window [base + 1, base + 2) holds two clicks; one more comes after
            # the kill. Give the owner time to read (and commit) the first two.
            await asyncio.sleep(1.0)
            owner.stop(signal.SIGKILL)
            await clicks(survivors[0], base + 1.5)  # two more in the same window
            await clicks(survivors[1], base + 2)  # and the next second, which closes it

            async def counted() -> None:
                while not any(c["start"] == base + 1 for c in counts(watcher)):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(counted(), 20)  # lease of 3 s, tried every second
            await asyncio.sleep(1.0)  # time for a duplicate, if there were one
            results = counts(watcher)
    starts = [c["start"] for c in results]
    assert len(starts) == len(set(starts))  # no window emitted twice
    second = [c for c in results if c["start"] == base + 1]
    assert len(second) == 1
    assert second[0]["count"] == 4  # and correct: two before the kill, two after
    assert second[0]["by"] != owner.pid
