"""Processes of the processing app that share one broker: the setup of the failover tests.

Each test starts a few, watches the derived topic on every one, finds the process that owns
it from the results (their ``by`` is its PID), kills it and waits for another to take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from tests.support.clients import SSEClient, post, sse_stream
from tests.support.server import ServerProcess

APP = "tests.apps.processing_app:app"
#: The derived topic: clicks on the home page counted per second.
ADDRESS = "/streams/sse/clicks/home/per-second"


@dataclass(frozen=True)
class Watched:
    """Servers and, at the same index, an SSE client on each one's derived topic."""

    servers: list[ServerProcess]
    clients: list[SSEClient]

    def split(self, owner_pid: int) -> tuple[ServerProcess, list[ServerProcess], SSEClient]:
        """The owner, the others, and the client on the first other: the owner's own stream
        ends when it is killed, so the takeover is watched from there."""
        (owner,) = [server for server in self.servers if server.pid == owner_pid]
        survivors = [server for server in self.servers if server is not owner]
        return owner, survivors, self.clients[self.servers.index(survivors[0])]


@contextlib.asynccontextmanager
async def watched_servers(env: Mapping[str, str], count: int = 3) -> AsyncIterator[Watched]:
    """Start ``count`` processing servers with ``env``, then one SSE client per server; on
    exit the clients close first, then the servers stop in reverse order."""
    with contextlib.ExitStack() as processes:
        servers = [processes.enter_context(ServerProcess(APP, env=env)) for _ in range(count)]
        async with contextlib.AsyncExitStack() as streams:
            clients = [
                await streams.enter_async_context(sse_stream(server.url, ADDRESS))
                for server in servers
            ]
            yield Watched(servers, clients)


async def clicks(server: ServerProcess, *times: float) -> None:
    """Publish one click on the home page per event time."""
    for ts in times:
        answer = await post(
            server.url, "/streams/publish/clicks/home", json={"user": "u", "ts": ts}
        )
        assert answer.status_code == 202


async def two_clicks(server: ServerProcess, second: float) -> None:
    """Two clicks early in ``second``: a click of the next second closes its window."""
    await clicks(server, second + 0.1, second + 0.2)


def counts(client: SSEClient) -> list[dict[str, Any]]:
    """The windows' results the client has received so far."""
    return [data for _, data in counts_with_ids(client)]


def counts_with_ids(client: SSEClient) -> list[tuple[str, dict[str, Any]]]:
    """The results with their event ids (a result published twice keeps its id)."""
    return [(event.id, json.loads(event.data)) for event in client.events if event.data]


async def wait_for_window(
    client: SSEClient, start: float, timeout: float, poll: float = 0.05
) -> None:
    """Wait until the client has received a result of the window that begins at ``start``."""

    async def arrived() -> None:
        while not any(data["start"] == start for data in counts(client)):  # noqa: ASYNC110
            await asyncio.sleep(poll)

    await asyncio.wait_for(arrived(), timeout)


async def owner_killed_mid_window(
    env: Mapping[str, str],
) -> tuple[list[dict[str, Any]], int, float]:
    """Three servers of the processing app on ``env``'s broker: two clicks close the first
    second (its result names the owner), two more fall into the second window, the owner is
    SIGKILLed a second later, then two more clicks in that window and two in the next, which
    close it. Returns every result a watching client got, the killed owner's PID, and the start
    of the window the kill fell in."""
    base = float(int(time.time()) - 1000)
    async with watched_servers(env) as watched:
        a, b, _ = watched.servers
        await two_clicks(a, base)
        await two_clicks(b, base + 1)  # closes the first second: it names the owner
        await watched.clients[2].wait_for(1)
        (first,) = counts(watched.clients[2])
        assert first["count"] == 2
        owner, survivors, watcher = watched.split(first["by"])
        # Give the owner time to read (and checkpoint) the second window's first two clicks.
        await asyncio.sleep(1.0)
        owner.stop(signal.SIGKILL)
        await two_clicks(survivors[0], base + 1.5)  # two more in the same window
        await two_clicks(survivors[1], base + 2)  # and the next second, which closes it
        await wait_for_window(watcher, base + 1, 20)  # lease of 3 s, tried every second
        await asyncio.sleep(1.0)  # time for a duplicate, if there were one
        return counts(watcher), owner.pid, base + 1
