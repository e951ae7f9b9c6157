"""Derived topics on Kafka (tansu): a consumer group elects one of three server processes to
compute a derived topic; SIGKILL it mid-window, and another takes over from the checkpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from typing import Any

import pytest

from tests.support.clients import SSEClient, post, sse_stream
from tests.support.server import ServerProcess
from tests.support.tansu import TansuProcess

pytestmark = pytest.mark.kafka

ADDRESS = "/streams/sse/clicks/home/per-second"


async def clicks(server: ServerProcess, *times: float) -> None:
    for ts in times:
        answer = await post(
            server.url, "/streams/publish/clicks/home", json={"user": "u", "ts": ts}
        )
        assert answer.status_code == 202


def counts(client: SSEClient) -> list[tuple[str, dict[str, Any]]]:
    return [(event.id, json.loads(event.data)) for event in client.events if event.data]


async def test_on_kafka_the_owner_killed_mid_window_loses_nothing(
    tansu_broker: TansuProcess, channel_prefix: str
) -> None:
    """The window's result counts every click, those the dead owner had read included; if it
    was published twice around the takeover, both have the same id."""
    env = {"BROKER_URL": tansu_broker.url, "CHANNEL_PREFIX": channel_prefix}
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
            await clicks(a, base + 0.1, base + 0.2)

            async def first_window() -> None:
                # The group may still be settling: click the next second until it is counted.
                second = base + 1
                while not counts(clients[2]):
                    await clicks(b, second + 0.1)
                    await asyncio.sleep(1.0)

            await asyncio.wait_for(first_window(), 60)
            (_, first), *_ = counts(clients[2])
            assert first["start"] == base and first["count"] == 2
            (owner,) = [server for server in servers if server.pid == first["by"]]
            survivors = [server for server in servers if server is not owner]
            watcher = clients[servers.index(survivors[0])]

            # Window [base + 2, base + 3): two clicks before the kill, two after.
            await clicks(a if owner is not a else b, base + 2.1, base + 2.2)
            await asyncio.sleep(2.0)  # read and checkpointed by the owner
            owner.stop(signal.SIGKILL)
            await clicks(survivors[0], base + 2.5, base + 2.6)
            await clicks(survivors[1], base + 3.1)  # closes it

            async def counted() -> None:
                while not any(d["start"] == base + 2 for _, d in counts(watcher)):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)

            await asyncio.wait_for(counted(), 60)  # the group notices the death in ~6 s
            await asyncio.sleep(2.0)  # time for a duplicate, if one were published
            results = counts(watcher)
    third = [(event_id, d) for event_id, d in results if d["start"] == base + 2]
    assert {d["count"] for _, d in third} == {4}  # every click, none twice
    assert len({event_id for event_id, _ in third}) == 1  # a repeat has the same id
    assert all(d["by"] != owner.pid for _, d in third)
