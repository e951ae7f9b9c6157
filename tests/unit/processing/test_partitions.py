"""Key partitions of a derived topic: what a declaration must give, where a key goes, and the
order a read over many streams is processed in."""

from __future__ import annotations

from typing import Any

import pytest

from fastapi_streaming import StreamingAPI, StreamingRouter
from fastapi_streaming.processing import Tumbling, Window
from fastapi_streaming.processing.partitions import partition_of
from fastapi_streaming.processing.stream_feed import BATCH, in_arrival_order


def count(window: Window[int], page: str) -> dict[str, Any]:
    return {"page": page, "count": window.value}


def test_partitions_need_a_key_read_from_the_sources_address() -> None:
    router = StreamingRouter()
    with pytest.raises(ValueError, match=r"key=.*page.*or leave partitions=1"):
        router.derive(
            "/clicks/per-second",
            source="/clicks",
            window=Tumbling(seconds=1),
            key="page",
            partitions=4,
        )(count)
    with pytest.raises(ValueError, match="at least 1"):
        router.derive(
            "/clicks/{page}/n", source="/clicks/{page}", window=Tumbling(seconds=1), partitions=0
        )(count)
    router.derive(  # the key is a parameter of the source: fine
        "/clicks/per-second",
        source="/clicks/{page}",
        window=Tumbling(seconds=1),
        key="page",
        partitions=4,
    )(count)


def test_a_key_always_goes_to_the_same_partition_and_keys_spread() -> None:
    spread = [partition_of((f"page-{n}",), 6) for n in range(1_000)]
    assert spread == [partition_of((f"page-{n}",), 6) for n in range(1_000)]
    assert all(120 < spread.count(p) < 220 for p in range(6))


async def test_partitions_are_refused_on_a_broker_without_history() -> None:
    streaming = StreamingAPI(broker="redis://127.0.0.1:6379")

    @streaming.publish("/clicks/{page}")
    async def click(event: dict[str, Any], page: str) -> dict[str, Any]:
        return event

    streaming.derive(
        "/clicks/per-second",
        source="/clicks/{page}",
        window=Tumbling(seconds=1),
        key="page",
        partitions=3,
    )(count)
    with pytest.raises(RuntimeError, match="redis-stream://"):
        async with streaming.running():
            pass


def test_entries_of_several_streams_are_processed_in_arrival_order() -> None:
    reply = [
        (b"a", [(b"1-0", {b"message": b"a1"}), (b"3-0", {b"message": b"a3"})]),
        (b"b", [(b"2-0", {b"message": b"b2"}), (b"4-0", {b"message": b"b4"})]),
    ]
    batch, positions = in_arrival_order(reply, {})
    assert [message for _, message in batch] == ["a1", "b2", "a3", "b4"]
    assert positions == {"a": "3-0", "b": "4-0"}


def test_a_stream_cut_off_by_count_holds_back_the_later_entries_of_the_others() -> None:
    full = [(f"{n}-0".encode(), {b"message": f"a{n}".encode()}) for n in range(BATCH)]
    reply = [(b"a", full), (b"b", [(b"1-1", {b"message": b"b"}), (f"{BATCH}-0".encode(), {})])]
    batch, positions = in_arrival_order(reply, {})
    assert len(batch) == BATCH + 1 and batch[2] == ("b", "b")
    assert positions == {"a": f"{BATCH - 1}-0", "b": "1-1"}  # b's last waits for a's next
