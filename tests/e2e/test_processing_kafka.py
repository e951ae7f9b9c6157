"""Derived topics on Kafka (tansu): a consumer group elects one of three server processes to
compute a derived topic; SIGKILL it mid-window, and another takes over from the checkpoint."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.support.clients import sse_stream
from tests.support.processing import (
    clicks,
    counts,
    counts_with_ids,
    two_clicks,
    wait_for_window,
    watched_servers,
)
from tests.support.server import ServerProcess
from tests.support.tansu import TansuProcess

pytestmark = pytest.mark.kafka


async def test_on_kafka_the_owner_killed_mid_window_loses_nothing(
    tansu_broker: TansuProcess, channel_prefix: str
) -> None:
    """The window's result counts every click, those the dead owner had read included; if it
    was published twice around the takeover, both have the same id."""
    env = {"BROKER_URL": tansu_broker.url, "CHANNEL_PREFIX": channel_prefix}
    base = float(int(time.time()) - 1000)
    async with watched_servers(env) as watched:
        seconds = 0

        async def first_window() -> None:
            # The owner starts in the background once the group has formed: click second
            # after second until one is counted (the next second's click closes it).
            nonlocal seconds
            while not counts(watched.clients[2]):
                await two_clicks(watched.servers[1], base + seconds)
                seconds += 1
                await asyncio.sleep(1.0)

        await asyncio.wait_for(first_window(), 90)
        first, *_ = counts(watched.clients[2])
        owner, survivors, watcher = watched.split(first["by"])

        # The next window: two clicks before the kill, two after.
        window = base + seconds
        await two_clicks(survivors[0], window)
        await asyncio.sleep(2.0)  # read and checkpointed by the owner
        owner.stop(signal.SIGKILL)
        await clicks(survivors[0], window + 0.5, window + 0.6)
        await clicks(survivors[1], window + 1.1)  # closes it
        await wait_for_window(watcher, window, 60, poll=0.1)  # the group notices the death in ~6 s
        await asyncio.sleep(2.0)  # time for a duplicate, if one were published
        results = counts_with_ids(watcher)
    third = [(event_id, d) for event_id, d in results if d["start"] == window]
    assert {d["count"] for _, d in third} == {4}  # every click, none twice
    assert len({event_id for event_id, _ in third}) == 1  # a repeat has the same id
    assert all(d["by"] != owner.pid for _, d in third)


PAGES = 60
PARTITIONS = 3
WINDOWS = 6
#: Records stamped before the broker stored them may reach a fetch late (docs/processing.md).
LATENESS = 2


def clicks_in(page: int, second: int) -> int:
    return 1 + (page + second) % 3


async def test_on_kafka_three_processes_share_key_partitions_and_one_is_killed(
    tansu_broker: TansuProcess, channel_prefix: str
) -> None:
    """A consumer group per key partition spreads them over three processes; SIGKILL one, and
    every page's every window is still counted right (repeats have the same id)."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from fastapi_streaming.events import Event

    topics = [f"{channel_prefix}clicks.page-{page}" for page in range(PAGES)]
    admin = AIOKafkaAdminClient(bootstrap_servers=tansu_broker.address)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1) for topic in topics])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=tansu_broker.address)
    await producer.start()
    base = float(int(time.time()) - 1000)

    async def window(second: int, nths: range = range(3)) -> None:
        for page in range(PAGES):
            for nth in range(clicks_in(page, second)):
                if nth in nths:
                    ts = base + second + (nth + 1) / (clicks_in(page, second) + 1)
                    event = Event.create(f"/clicks/page-{page}", {"user": "u", "ts": ts})
                    await producer.send(topics[page], event.to_message().encode())
        await producer.flush()

    env = {
        "BROKER_URL": tansu_broker.url,
        "CHANNEL_PREFIX": channel_prefix,
        "PARTITIONS": str(PARTITIONS),
        "ALLOWED_LATENESS": str(LATENESS),
    }
    try:
        with (
            ServerProcess("tests.apps.partitioned_app:app", env=env) as a,
            ServerProcess("tests.apps.partitioned_app:app", env=env) as b,
            ServerProcess("tests.apps.partitioned_app:app", env=env) as c,
        ):
            assert b.pid != c.pid
            async with sse_stream(a.url, "/streams/sse/clicks/per-second") as live:
                await asyncio.sleep(8.0)  # the three join the groups, which find the topics
                for second in range(3):
                    await window(second)
                await window(3, range(1))

                await wait_for_window(live, base, 60, poll=0.1)
                await asyncio.sleep(2.0)  # read and checkpointed
                before_kill = {d["by"] for d in counts(live)}
                c.stop(signal.SIGKILL)
                await window(3, range(1, 3))
                for second in range(4, WINDOWS + LATENESS + 1):
                    await window(second)

                def windows() -> set[tuple[str, float]]:
                    return {(d["page"], d["start"]) for d in counts(live)}

                async def all_counted() -> None:
                    while len(windows()) < PAGES * WINDOWS:  # noqa: ASYNC110
                        await asyncio.sleep(0.2)

                await asyncio.wait_for(all_counted(), 90)
                await asyncio.sleep(2.0)
                seen = counts_with_ids(live)
    finally:
        await producer.stop()
    by_window: dict[tuple[str, float], set[tuple[str, int]]] = {}
    for event_id, data in seen:
        by_window.setdefault((data["page"], data["start"]), set()).add((event_id, data["count"]))
    for page in range(PAGES):
        for second in range(WINDOWS):
            emitted = by_window[(f"page-{page}", base + second)]
            assert {count for _, count in emitted} == {clicks_in(page, second)}, (page, second)
            assert len({event_id for event_id, _ in emitted}) == 1  # repeats share the id
    assert len(before_kill) >= 2  # the partitions were spread
    after_kill = {
        data["by"] for _, data in seen if data["start"] >= base + 3
    }  # windows the killed process could not finish
    assert c.pid not in after_kill
