from __future__ import annotations

from fastapi_streaming.events import EncodedEvent, Event, new_event_id
from fastapi_streaming.replay import ReplayBuffers, events_after, uuid7_millis


def encoded(topic: str, event_id: str | None = None) -> EncodedEvent:
    return EncodedEvent(Event(event_id or new_event_id(), topic, "t", None), b"null")


def test_uuid7_millis_reads_the_time_and_refuses_other_ids() -> None:
    import time

    millis = uuid7_millis(new_event_id())
    assert millis is not None and abs(millis - time.time() * 1000) < 5000
    assert uuid7_millis("8f14e45fceea167a5a36dedd4bea2543") is None  # a digest, not a uuid7
    assert uuid7_millis("nonsense") is None


def test_exact_match_is_certain() -> None:
    events = [encoded("/a") for _ in range(5)]
    later, certain = events_after(events, events[1].event.id)
    assert later == events[2:] and certain


def test_an_id_from_another_topic_resumes_by_time() -> None:
    import time

    before = new_event_id()
    time.sleep(0.002)
    first = encoded("/a")
    time.sleep(0.002)
    elsewhere = new_event_id()  # the last event the client saw, on another topic
    time.sleep(0.002)
    second = encoded("/a")

    later, certain = events_after([first, second], elsewhere)
    assert later == [second] and certain, "the buffer reaches back before that id"
    later, certain = events_after([first, second], before)
    assert later == [first, second] and not certain, "it does not reach back that far"


def test_buffers_are_bounded_per_address_and_in_addresses() -> None:
    buffers = ReplayBuffers(size=3, addresses=2)
    for _ in range(5):
        buffers.record(encoded("/a"))
    assert len(buffers.recent("/a")) == 3
    buffers.record(encoded("/b"))
    buffers.record(encoded("/c"))
    assert buffers.recent("/a") == (), "least recently used address went first"
    assert len(buffers.recent("/b")) == 1 and len(buffers.recent("/c")) == 1


def raw(topic: str, digest: str) -> EncodedEvent:
    """An event another system wrote into the channel: its id carries no time."""
    return EncodedEvent(Event(digest, topic, "t", None), b"null")


def test_an_id_of_the_same_millisecond_from_another_topic_is_ordered_by_the_whole_id() -> None:
    earlier = encoded("/b")
    elsewhere = new_event_id()  # the client's last event, on /a
    same_millisecond = encoded("/b")
    assert uuid7_millis(elsewhere) is not None
    later, certain = events_after([earlier, same_millisecond], elsewhere)
    assert later == [same_millisecond] and certain


def test_events_of_other_systems_are_placed_by_their_position() -> None:
    before = encoded("/a")
    unsure = raw("/a", "8f14e45fceea167a5a36dedd4bea2543")
    elsewhere = new_event_id()
    after = encoded("/a")
    also_after = raw("/a", "c9f0f895fb98ab9159f51fd0297e236d")

    later, certain = events_after([before, after, also_after], elsewhere)
    assert later == [after, also_after] and certain
    later, certain = events_after([before, unsure, after], elsewhere)
    assert later == [after] and not certain, "nobody knows if the client saw it: a gap"
