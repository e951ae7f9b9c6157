"""Derived topics on NATS: the processing conformance suite on JetStream and on core NATS.

On JetStream the owner replays the stream from its checkpoint, so failover loses nothing; on
core NATS a new owner starts from what is published after it took over (the one expected
failure). Each test has a stream, prefix and KV buckets of its own, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import nats
import nats.js.errors
import pytest
import pytest_asyncio
from fastapi_streaming import StreamingAPI
from fastapi_streaming.brokers.hookspecs import BrokerMessage
from fastapi_streaming.events import Event
from fastapi_streaming.processing import Tumbling, Window
from fastapi_streaming.processing.stream_feed import LostLease
from fastapi_streaming.testing.processing_conformance import ProcessingConformance

from fastapi_streaming_nats import NATSBackend
from fastapi_streaming_nats.options import NATSOptions
from fastapi_streaming_nats.processing import (
    JetStreamFeed,
    KVLease,
    bucket_name,
    filter_subject,
)

NATS_URL = "nats://127.0.0.1:4222"


async def delete_jetstream(stream: str | None, buckets: list[str]) -> None:
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    try:
        for bucket in buckets:
            try:
                await js.delete_key_value(bucket)
            except nats.js.errors.NotFoundError:
                pass
        if stream is not None:
            try:
                await js.delete_stream(stream)
            except nats.js.errors.NotFoundError:
                pass
    finally:
        await nc.close()


class TestEmbeddedOnJetStream(ProcessingConformance):
    patience = 15.0

    @pytest.fixture
    def names(self) -> tuple[str, str]:
        tag = uuid.uuid4().hex[:12]
        return f"PROCESSING_{tag}", f"processing_{tag}"

    @pytest_asyncio.fixture
    async def broker_url(self, names: tuple[str, str]) -> AsyncIterator[str]:  # type: ignore[override]
        stream, prefix = names
        yield f"{NATS_URL}?stream={stream}&prefix={prefix}&max_age=600"
        await delete_jetstream(stream, [f"{stream}_LEASES", f"{stream}_CHECKPOINTS"])


class TestEmbeddedOnCoreNATS(ProcessingConformance):
    unsupported: ClassVar[dict[str, str]] = {
        "test_failover_neither_loses_nor_double_counts": (
            "core NATS keeps no history: a new owner misses what the old one had folded in"
        ),
    }

    @pytest_asyncio.fixture
    async def broker_url(self) -> AsyncIterator[str]:  # type: ignore[override]
        prefix = f"processing_{uuid.uuid4().hex[:12]}"
        yield f"{NATS_URL}?prefix={prefix}"
        await delete_jetstream(None, [f"{prefix}_LEASES"])


@pytest.mark.parametrize(
    ("patterns", "subject"),
    [
        (["clicks.*"], "p.clicks.>"),
        (["clicks.*.per-second"], "p.clicks.>"),
        (["clicks.home"], "p.clicks.home"),
        (["clicks.*", "views.*"], "p.>"),
        (["t.clicks.*", "t.views.*"], "p.t.>"),
        (["t.clicks", "t.clicks.*"], "p.t.>"),
        (["a-*.x"], "p.>"),
    ],
)
def test_the_filter_subject_covers_every_channel_of_the_patterns(
    patterns: list[str], subject: str
) -> None:
    assert filter_subject(NATSOptions.from_url(f"{NATS_URL}?prefix=p"), patterns) == subject


def test_buckets_are_named_after_the_stream_or_the_prefix() -> None:
    jetstream = NATSOptions.from_url(f"{NATS_URL}?stream=S1")
    assert bucket_name(jetstream, "LEASES") == "S1_LEASES"
    core = NATSOptions.from_url(f"{NATS_URL}?prefix=a.b")
    assert bucket_name(core, "LEASES") == "a_b_LEASES"
    assert bucket_name(NATSOptions.from_url(NATS_URL), "LEASES") == "FASTAPI_STREAMING_LEASES"


async def test_key_partitions_are_refused_naming_the_brokers_that_share_them() -> None:
    """Partitions need a consumer group sharing them among the processes: not on NATS yet."""
    tag = uuid.uuid4().hex[:12]
    stream = f"PARTITIONS_{tag}"
    streaming = StreamingAPI(broker=f"{NATS_URL}?stream={stream}&prefix=partitions_{tag}")

    @streaming.publish("/clicks/{page}")
    async def click(event: dict[str, Any], page: str) -> dict[str, Any]:
        return event

    @streaming.derive(
        "/clicks/per-second",
        source="/clicks/{page}",
        window=Tumbling(seconds=1),
        key="page",
        partitions=3,
    )
    def per_second(window: Window[int], page: str) -> int:
        return window.value

    try:
        with pytest.raises(RuntimeError, match=r"only redis-stream:// and kafka://"):
            async with streaming.running():
                pass
    finally:
        await delete_jetstream(stream, [])


async def test_a_pattern_subscription_matches_the_glob_and_survives_a_reconnection() -> None:
    """Core NATS owners read their sources through it; the broker connection reconnects a
    backend by disconnect() and connect(), after which the owner must still be fed."""
    prefix = f"patterns_{uuid.uuid4().hex[:12]}"
    backend = NATSBackend(f"{NATS_URL}?prefix={prefix}")
    got: list[tuple[str, str]] = []

    def deliver(message: BrokerMessage) -> None:
        got.append((message.channel, message.message))

    await backend.connect()
    try:
        await backend.subscribe_pattern("clicks.*", deliver)
        await backend.disconnect()
        await backend.connect()
        for channel in ("clicks.home", "clicks.a.b", "views.home", "clicksx.home"):
            await backend.publish(channel, channel)
        await backend.ping()
        await asyncio.sleep(0.1)
        assert got == [("clicks.home", "clicks.home"), ("clicks.a.b", "clicks.a.b")]
        await backend.unsubscribe_pattern("clicks.*", deliver)
        await backend.publish("clicks.home", "after")
        await backend.ping()
        await asyncio.sleep(0.1)
        assert len(got) == 2
    finally:
        await backend.disconnect()


@pytest_asyncio.fixture
async def jetstream() -> AsyncIterator[NATSOptions]:
    """Options with a stream and prefix of this test's own, deleted afterwards with its buckets."""
    tag = uuid.uuid4().hex[:12]
    stream = f"FEED_{tag}"
    nc = await nats.connect(NATS_URL)
    await nc.jetstream().add_stream(name=stream, subjects=[f"feed_{tag}.>"])
    await nc.close()
    yield NATSOptions.from_url(f"{NATS_URL}?stream={stream}&prefix=feed_{tag}")
    await delete_jetstream(stream, [f"{stream}_LEASES", f"{stream}_CHECKPOINTS"])


async def test_one_process_holds_the_lease_until_it_lets_go_or_it_expires(
    jetstream: NATSOptions,
) -> None:
    first, second = KVLease(jetstream, "t.{x}", 1000), KVLease(jetstream, "t.{x}", 1000)
    try:
        assert await first.acquire()
        assert not await second.acquire()
        assert await first.renew()
        await first.release()
        assert await second.acquire()  # at once: released
        assert not await first.renew()
        await asyncio.sleep(2.5)  # second stops renewing: the key expires (TTL 1 s)
        assert await first.acquire()
        assert not await second.renew()
    finally:
        await first.close()
        await second.close()


async def test_a_deposed_owner_cannot_commit_and_a_republished_result_is_stored_once(
    jetstream: NATSOptions,
) -> None:
    """The new owner's claim makes the old owner's checkpoint revision stale; the results both
    publish carry the same id, which JetStream's duplicate window drops."""
    lease = KVLease(jetstream, "out.{x}", 3000)
    old = JetStreamFeed(jetstream, lease, ["in.*"], lambda channel: True)
    new = JetStreamFeed(jetstream, lease, ["in.*"], lambda channel: True)
    result = Event(id="0190a0b0-0000-7000-8000-000000000001", topic="/out/x", time="t", data=1)
    try:
        await old.load()
        await old.commit({"state": 1}, [("out.x", result.to_message())])
        assert (await new.load()).engine == {"state": 1}
        with pytest.raises(LostLease):
            await old.commit({"state": 2}, [("out.x", result.to_message())])
        await new.commit({"state": 2}, [("out.x", result.to_message())])
        nc = await nats.connect(NATS_URL)
        try:
            info = await nc.jetstream().stream_info(jetstream.stream or "")
        finally:
            await nc.close()
        assert info.state.messages == 1  # three publishes of one id
    finally:
        await old.close()
        await new.close()
        await lease.close()


async def test_the_feed_replays_the_sources_after_the_checkpoint_in_stream_order(
    jetstream: NATSOptions,
) -> None:
    lease = KVLease(jetstream, "out.{x}", 3000)
    feed = JetStreamFeed(jetstream, lease, ["in.*"], lambda channel: channel != "in.skip")
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()

    async def publish(channel: str) -> None:
        await js.publish(f"{jetstream.prefix}.{channel}", channel.encode())

    async def next_batch() -> list[tuple[str, str]]:
        batch, positions = await asyncio.wait_for(anext(batches), 5)
        feed.advance(positions)
        return batch

    try:
        await publish("in.before")  # before the first owner: not read
        await feed.load()
        batches = feed.batches()
        for channel in ("in.a", "in.skip", "in.b"):
            await publish(channel)
        await publish("other.c")  # outside the filter subject
        found: list[tuple[str, str]] = []
        while len(found) < 2:
            found += await next_batch()
        assert found == [("in.a", "in.a"), ("in.b", "in.b")]
        await feed.commit(None, [])
        await publish("in.d")
        await batches.aclose()  # type: ignore[attr-defined]
        await feed.close()
        checkpoint = await feed.load()  # a new owner: reads on after the checkpoint
        batches = feed.batches()
        assert await next_batch() == [("in.d", "in.d")]
        assert checkpoint.positions
    finally:
        await feed.close()
        await lease.close()
        await nc.close()


async def test_a_checkpoint_above_max_payload_is_refused_saying_so(jetstream: NATSOptions) -> None:
    lease = KVLease(jetstream, "big.{x}", 3000)
    feed = JetStreamFeed(jetstream, lease, ["in.*"], lambda channel: True)
    try:
        await feed.load()
        with pytest.raises(ValueError, match="above the NATS server's max_payload"):
            await feed.commit({"windows": "x" * (2 << 20)}, [])
    finally:
        await feed.close()
        await lease.close()
