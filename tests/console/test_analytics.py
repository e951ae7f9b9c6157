"""Usage analytics in one process: exact counts, buckets, bounded principals, retries."""

from __future__ import annotations

from typing import Any

import pytest
import redis.exceptions

from fastapi_streaming import Analytics, StreamingAPI, UsageRecord, summarize
from fastapi_streaming.analytics import OTHER, MemoryUsageStore, RedisUsageStore, UsageRecorder
from fastapi_streaming.fanout import ClientQueue
from fastapi_streaming.owners import Owner


def api(**analytics: Any) -> StreamingAPI:
    streaming = StreamingAPI(analytics=Analytics(**analytics), console=False)

    @streaming.subscribe("/rooms/{room}")
    async def rooms(event: dict[str, Any], room: str) -> dict[str, Any]:
        return event

    return streaming


def owned(principal: str, plan: str = "free") -> ClientQueue:
    queue = ClientQueue(100, "sse")
    queue.owner = Owner(principal, {"": plan})
    return queue


async def test_each_owner_is_counted_the_events_it_was_handed() -> None:
    streaming = api()
    async with streaming.running() as runtime:
        bob, carol = owned("bob"), owned("carol", "pro")
        await runtime.subscribe(bob, "/rooms/1")
        await runtime.subscribe(carol, "/rooms/1")
        for n in range(3):
            await streaming.emit("/rooms/1", {"n": n})
        await _drained(runtime, bob, 3)
        await runtime.disconnect(carol, ["/rooms/1"])  # left: its 3 are counted all the same
        await streaming.emit("/rooms/1", {"n": 3})
        await _drained(runtime, bob, 4)
        records = await streaming.usage()
        later = await streaming.usage()  # nothing is counted twice
    totals = {
        (t.group["principal"], t.group["plan"]): t
        for t in summarize(records, ("principal", "plan"))
    }
    assert totals[("bob", "free")].delivered == 4
    assert totals[("carol", "pro")].delivered == 3
    assert totals[("(server)", "none")].published == 4
    assert all(isinstance(r, UsageRecord) and r.topic == "/rooms/{room}" for r in records)
    assert sum(r.delivered for r in later) == 7


async def _drained(runtime: Any, queue: ClientQueue, events: int) -> None:
    """Wait until ``queue`` was handed ``events`` events in all."""
    while queue.delivered < events:
        await queue.wait()
        queue.take()


async def test_principals_past_the_bound_are_counted_as_other() -> None:
    streaming = api(max_principals=2)
    async with streaming.running() as runtime:
        for name in ("a", "b", "c", "d"):
            runtime.published_by[(name, "none", "/rooms/{room}")] += 1
        records = await streaming.usage()
    assert sorted((r.principal, r.published) for r in records) == [
        (OTHER, 2),
        ("a", 1),
        ("b", 1),
    ]


async def test_buckets_past_the_retention_are_dropped() -> None:
    store = MemoryUsageStore(retention_buckets=3)
    key = ("a", "none", "/t", "published")
    await store.add({10: {key: 1}, 11: {key: 2}})
    await store.add({14: {key: 4}})
    assert await store.read(0, 100) == {14: {key: 4}}


async def test_counts_the_storage_could_not_take_are_stored_at_the_next_flush() -> None:
    # A real Redis client aimed at a port nothing listens on: the store fails for real.
    recorder = UsageRecorder(Analytics(storage="redis://127.0.0.1:1/0"), "memory://")
    streaming = api()
    async with streaming.running() as runtime:
        recorder._runtime = runtime
        runtime.fanout.usage.tracking = True
        runtime.published_by[("alice", "none", "/rooms/{room}")] += 5
        with pytest.raises(redis.exceptions.ConnectionError):
            await recorder.flush()
        assert isinstance(recorder.store, RedisUsageStore)
        await recorder.store.close()
        recorder._store = MemoryUsageStore(retention_buckets=1440)
        runtime.published_by[("alice", "none", "/rooms/{room}")] += 1
        records = await recorder.query()
        recorder._runtime = None
    assert [(r.principal, r.published) for r in records] == [("alice", 6)]


def test_summaries_group_by_known_fields_only() -> None:
    with pytest.raises(ValueError, match="colour"):
        summarize([], ("colour",))
