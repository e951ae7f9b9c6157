from __future__ import annotations

import asyncio
from collections.abc import Callable

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


def test_a_resume_keeps_history_order_and_skips_live_copies_of_what_it_covered() -> None:
    """History read from the broker is ahead of the live stream: events 3-5 were replayed
    (the client had 1-2), event 2 and 3 had already come live while the queue was held, and 4-5
    come live after; none of them reaches the client twice, and order is history order."""
    queue = ClientQueue(100)
    queue.put(event("/b", 90), OverflowPolicy.DISCONNECT)  # another topic, before the hold
    queue.hold()
    queue.put(event("/a", 2), OverflowPolicy.DISCONNECT)  # live, lagging: the client had it
    queue.put(event("/a", 3), OverflowPolicy.DISCONNECT)  # live, also replayed
    history = [event("/a", seq) for seq in (1, 2, 3, 4, 5)]
    queue.replay(history[2:], topic="/a", covered={"2", "3", "4", "5"})
    queue.release()
    for seq in (4, 5, 6):  # 4 and 5 come live again; 6 is the first one after the history
        queue.put(event("/a", seq), OverflowPolicy.DISCONNECT)
    queue.put(event("/a", 5), OverflowPolicy.DISCONNECT)  # past the history: not skipped now
    assert seqs(queue.take()) == [90, 3, 4, 5, 6, 5]


def test_skipping_live_copies_of_one_topic_leaves_the_others_alone() -> None:
    queue = ClientQueue(100)
    queue.hold()
    queue.replay([event("/a", 1)], topic="/a", covered={"1"})
    queue.release()
    queue.put(event("/b", 1), OverflowPolicy.DISCONNECT)  # same id, other topic: delivered
    queue.put(event("/a", 1), OverflowPolicy.DISCONNECT)  # still skipped
    queue.put(event("/a", 2), OverflowPolicy.DISCONNECT)
    taken = [(i.topic, i.event.id) for i in queue.take() if isinstance(i, EncodedEvent)]
    assert taken == [("/a", "1"), ("/b", "1"), ("/a", "2")]


def state(queue: ClientQueue) -> tuple[object, ...]:
    closed = queue.closed.code if queue.closed is not None else None
    return (seqs(queue.take()), queue.dropped, closed)


def resumed(maxsize: int) -> ClientQueue:
    """A queue that resumed ``/a`` with events 2 and 3 covered: the live stream may repeat
    them, and they are skipped."""
    queue = ClientQueue(maxsize)
    queue.replay([], topic="/a", covered=frozenset({"2", "3"}))
    return queue


@pytest.mark.parametrize("policy", list(OverflowPolicy))
@pytest.mark.parametrize(("maxsize", "count"), [(100, 5), (4, 10), (6, 6), (5, 6), (1, 3)])
@pytest.mark.parametrize("make", [ClientQueue, resumed], ids=["fresh", "resumed"])
def test_put_many_is_one_put_per_event_whatever_the_bound_and_the_policy(
    policy: OverflowPolicy, maxsize: int, count: int, make: Callable[[int], ClientQueue]
) -> None:
    events = [event("/a" if seq % 3 else "/b", seq) for seq in range(2, 2 + count)]
    one_by_one, together = make(maxsize), make(maxsize)
    for item in events:
        one_by_one.put(item, policy)
    together.put_many(events, policy)

    assert state(together) == state(one_by_one)


async def test_put_many_wakes_the_consumer_and_keeps_its_own_copy() -> None:
    queue = ClientQueue(100)
    waiter = queue.waiter()
    events = [event("/a", seq) for seq in range(3)]
    queue.put_many(events, OverflowPolicy.DISCONNECT)
    events.clear()  # the fan-out reuses nothing, but a caller's list is the caller's
    assert waiter.done()
    assert seqs(queue.take()) == [0, 1, 2]


def test_put_many_on_a_closed_queue_adds_nothing() -> None:
    queue = ClientQueue(100)
    queue.close(CloseReason(SLOW_CLIENT, "gone"))
    queue.put_many([event("/a", 0), event("/a", 1)], OverflowPolicy.DROP_OLDEST)
    assert queue.take() == []
