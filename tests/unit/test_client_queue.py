from __future__ import annotations

import asyncio

import pytest

from fastapi_streaming.events import EncodedEvent, Event
from fastapi_streaming.fanout import SLOW_CLIENT, ClientQueue, CloseReason, Reply
from fastapi_streaming.topics import OverflowPolicy


def event(topic: str, seq: int) -> EncodedEvent:
    return EncodedEvent(Event(str(seq), topic, "t", seq), str(seq).encode())


def seqs(items: list[EncodedEvent | Reply]) -> list[int]:
    return [int(item.event.id) for item in items if isinstance(item, EncodedEvent)]


def test_disconnect_policy_closes_with_a_reason_and_counts() -> None:
    queue = ClientQueue(3)
    closed = []
    queue.on_close = closed.append
    for seq in range(5):
        queue.put(event("/a", seq), OverflowPolicy.DISCONNECT)
    assert queue.closed is not None and queue.closed.code == SLOW_CLIENT
    assert "more than 3 events" in queue.closed.message
    assert closed == [queue.closed]
    assert queue.dropped == 1, "later events are not counted once the client is gone"
    assert seqs(queue.take()) == [0, 1, 2]


def test_drop_oldest_keeps_the_newest_and_counts_drops() -> None:
    queue = ClientQueue(3)
    for seq in range(10):
        queue.put(event("/a", seq), OverflowPolicy.DROP_OLDEST)
    assert queue.closed is None
    assert queue.dropped == 7
    assert seqs(queue.take()) == [7, 8, 9]


def test_latest_keeps_one_pending_event_per_topic_in_arrival_order() -> None:
    queue = ClientQueue(10)
    for seq, topic in enumerate(["/a", "/b", "/a", "/a", "/b", "/c"]):
        queue.put(event(topic, seq), OverflowPolicy.LATEST)
    assert queue.dropped == 3
    assert seqs(queue.take()) == [3, 4, 5]
    queue.put(event("/a", 9), OverflowPolicy.LATEST)
    assert seqs(queue.take()) == [9]


def test_take_returns_everything_pending_and_counts_delivered() -> None:
    queue = ClientQueue(100)
    for seq in range(5):
        queue.put(event("/a", seq), OverflowPolicy.DISCONNECT)
    queue.reply("ack")
    batch = queue.take()
    assert seqs(batch) == [0, 1, 2, 3, 4]
    assert isinstance(batch[-1], Reply) and batch[-1].text == "ack"
    assert queue.take() == [] and queue.delivered == 6


async def test_wait_wakes_on_put_and_times_out_when_idle() -> None:
    queue = ClientQueue(10)
    assert await queue.wait(0.01) is False
    asyncio.get_running_loop().call_later(0.01, queue.put, event("/a", 1), OverflowPolicy.LATEST)
    assert await queue.wait(1) is True


def test_queue_needs_room_for_one_event() -> None:
    with pytest.raises(ValueError):
        ClientQueue(0)


async def test_a_held_queue_keeps_its_consumer_waiting_until_released() -> None:
    """While missed events are looked up, pending live events must not wake the writer: a
    writer woken with nothing it may take would spin without yielding to the lookup."""
    queue = ClientQueue(10)
    queue.hold()
    queue.put(event("/a", 1), OverflowPolicy.DISCONNECT)
    assert not queue.ready
    assert await queue.wait(0.05) is False
    assert queue.take() == []
    waiting = asyncio.create_task(queue.wait())
    await asyncio.sleep(0)
    queue.replay([event("/a", 0)])
    queue.release()
    assert await asyncio.wait_for(waiting, 1) is True
    assert seqs(queue.take()) == [0, 1]


async def test_a_held_queue_still_wakes_its_consumer_when_closed() -> None:
    queue = ClientQueue(10)
    queue.hold()
    waiting = asyncio.create_task(queue.wait())
    await asyncio.sleep(0)
    queue.close(CloseReason("shutdown", "the server is shutting down"))
    assert await asyncio.wait_for(waiting, 1) is True


def test_take_respects_its_limit_and_leaves_the_rest_in_order() -> None:
    queue = ClientQueue(10)
    for seq in range(5):
        queue.put(event("/a", seq), OverflowPolicy.DISCONNECT)
    assert seqs(queue.take(2)) == [0, 1]
    assert seqs(queue.take(2)) == [2, 3]
    assert seqs(queue.take()) == [4]
    assert queue.delivered == 5


def test_an_ack_queued_while_held_goes_after_earlier_replies_and_before_new_events() -> None:
    queue = ClientQueue(100)
    queue.reply("ack-1")
    queue.put(event("/a", 1), OverflowPolicy.DISCONNECT)
    queue.hold()
    queue.put(event("/b", 2), OverflowPolicy.DISCONNECT)  # live, arrived while subscribing
    queue.replay([event("/b", 0)], Reply("gap"))
    queue.reply("ack-2", first=True)
    queue.release()
    taken = [item.text if isinstance(item, Reply) else item.event.id for item in queue.take()]
    assert taken == ["ack-1", "1", "ack-2", "gap", "0", "2"]
