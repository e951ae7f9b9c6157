"""Merging the records of many Kafka partitions by the time the broker took them."""

from __future__ import annotations

from fastapi_streaming.processing.kafka_order import ArrivalOrder, Record


def record(topic: str, offset: int, timestamp: int) -> Record:
    return Record(timestamp, topic, 0, offset, b"")


LATER = 10**6  # a wall clock long past every record: the grace holds nothing back


def test_a_partition_the_broker_holds_more_of_holds_back_what_is_newer_than_its_last() -> None:
    order = ArrivalOrder(wall_ms=lambda: LATER)
    order.reset({("a", 0): 0, ("b", 0): 0})
    order.add([record("a", 0, 10), record("a", 1, 30)])
    order.add([record("b", 0, 20)])
    ends = {("a", 0): 2, ("b", 0): 5}  # b has more on the broker, from time 20 on
    released = order.release(ends.get)
    assert [(r.topic, r.timestamp) for r in released] == [("a", 10), ("b", 20)]
    order.add([record("b", 1, 25)])
    ends[("b", 0)] = 2  # b caught up
    assert [(r.topic, r.timestamp) for r in order.release(ends.get)] == [("b", 25), ("a", 30)]
    assert len(order) == 0


def test_a_partition_never_fetched_holds_everything_back_until_the_hold_time_is_over() -> None:
    now = [0.0]
    order = ArrivalOrder(hold_s=2.0, clock=lambda: now[0], wall_ms=lambda: LATER)
    order.reset({("a", 0): 0, ("b", 0): 0})
    order.add([record("a", 0, 10)])
    ends: dict[tuple[str, int], int] = {("a", 0): 1}  # b: not fetched yet
    assert order.release(ends.get) == []
    now[0] = 1.0
    assert order.release(ends.get) == []
    now[0] = 2.5
    assert [r.timestamp for r in order.release(ends.get)] == [10]


def test_records_of_one_partition_go_out_in_offset_order_whatever_their_timestamps() -> None:
    order = ArrivalOrder(wall_ms=lambda: LATER)
    order.reset({("a", 0): 0, ("b", 0): 0})
    order.add([record("a", 0, 50), record("a", 1, 10)])  # a producer with a late clock
    order.add([record("b", 0, 20)])
    ends = {("a", 0): 2, ("b", 0): 3}
    # b's last is 20: a's first (50) must wait, and so must its second, behind it.
    assert [(r.topic, r.offset) for r in order.release(ends.get)] == [("b", 0)]


def test_records_newer_than_the_grace_wait_for_those_still_on_their_way() -> None:
    """A partition that looked caught up may yet receive a record stamped before the others'
    (its producer stamped it, the broker had not appended it when this process fetched)."""
    wall = [1_000]
    order = ArrivalOrder(grace_s=0.5, wall_ms=lambda: wall[0])
    order.reset({("a", 0): 0, ("b", 0): 0})
    order.add([record("a", 0, 400), record("a", 1, 700)])
    ends = {("a", 0): 2, ("b", 0): 0}  # b: caught up at its last fetch
    assert [r.timestamp for r in order.release(ends.get)] == [400]
    order.add([record("b", 0, 600)])  # stamped at 600, fetched after 1,000
    ends[("b", 0)] = 1
    wall[0] = 1_300
    assert [(r.topic, r.timestamp) for r in order.release(ends.get)] == [("b", 600), ("a", 700)]
