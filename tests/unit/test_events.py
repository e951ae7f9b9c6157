from __future__ import annotations

import json
import time
import uuid

import pytest

from fastapi_streaming.events import (
    COUNTER_BITS,
    EncodedEvent,
    Event,
    EventIds,
    UndecodableMessage,
    decode_message,
    new_event_id,
)
from fastapi_streaming.fanout import Reply
from fastapi_streaming.runtime import gap_notice
from fastapi_streaming.transports.sse import sse_frame, sse_named_frame, sse_reply
from fastapi_streaming.transports.websocket import ws_envelope_frame, ws_reply, ws_text_frame


def test_event_ids_are_uuid7_and_time_ordered() -> None:
    ids = [new_event_id() for _ in range(50)]
    assert all(uuid.UUID(value).version == 7 for value in ids)
    assert len(set(ids)) == 50
    assert [value[:13] for value in ids] == sorted(value[:13] for value in ids)


def test_ids_of_one_process_increase_within_a_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = EventIds()
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_000_000_000)
    made = [uuid.UUID(ids()) for _ in range(1000)]
    assert all(value.version == 7 and value.variant == uuid.RFC_4122 for value in made)
    assert {value.int >> 80 for value in made} == {1_700_000_000_000}
    assert [value.int for value in made] == sorted(value.int for value in made)
    assert len({value.int for value in made}) == 1000


def test_ids_stay_ordered_when_the_clock_steps_back_or_the_counter_runs_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = EventIds()
    now = [1_700_000_000_000_000_000]
    monkeypatch.setattr(time, "time_ns", lambda: now[0])
    first = uuid.UUID(ids())
    now[0] -= 5_000_000_000  # NTP stepped the clock back five seconds
    second = uuid.UUID(ids())
    ids._counter = 2**COUNTER_BITS - 1  # the last id this millisecond can hold
    third = uuid.UUID(ids())
    assert first.int < second.int < third.int
    assert third.int >> 80 == (first.int >> 80) + 1, "it borrowed the next millisecond"


def test_envelope_round_trips_with_the_same_id_and_time() -> None:
    event = Event.create("/stocks/AAPL", {"price": 1.5})
    message = event.to_message(b'{"price":1.5}')
    document = json.loads(message)
    assert document["specversion"] == "1.0" and document["subject"] == "/stocks/AAPL"
    decoded = decode_message(message, topic="/stocks/AAPL", channel="stocks.AAPL")
    assert decoded == Event(event.id, "/stocks/AAPL", event.time, {"price": 1.5})


def test_raw_json_from_another_system_gets_a_stable_id() -> None:
    first = decode_message('{"price": 2}', topic="/s/A", channel="s.A")
    again = decode_message('{"price": 2}', topic="/s/A", channel="s.A")
    other = decode_message('{"price": 3}', topic="/s/A", channel="s.A")
    assert first.data == {"price": 2}
    assert first.id == again.id != other.id


def test_raw_non_object_json_is_data_too() -> None:
    assert decode_message("[1, 2]", topic="/t", channel="t").data == [1, 2]


def test_non_json_message_is_refused_with_the_channel_named() -> None:
    with pytest.raises(UndecodableMessage, match="'t'"):
        decode_message("not json", topic="/t", channel="t")


def test_frames_are_encoded_once_and_shared() -> None:
    event = Event("id-1", "/stocks/AAPL", "2026-01-01T00:00:00.000Z", None)
    encoded = EncodedEvent(event, b'{"p":1}')
    assert encoded.frame(sse_frame) == b'id: id-1\ndata: {"p":1}\n\n'
    assert encoded.frame(sse_named_frame) == b'id: id-1\nevent: /stocks/AAPL\ndata: {"p":1}\n\n'
    assert encoded.frame(ws_text_frame) == '{"p":1}'
    assert json.loads(encoded.frame(ws_envelope_frame)) == {
        "type": "event",
        "topic": "/stocks/AAPL",
        "id": "id-1",
        "time": "2026-01-01T00:00:00.000Z",
        "data": {"p": 1},
    }
    assert encoded.frame(sse_frame) is encoded.frame(sse_frame)
    assert encoded.frame(ws_envelope_frame) is encoded.frame(ws_envelope_frame)


def test_a_new_wire_format_needs_no_change_to_the_core() -> None:
    """A transport brings its encoder; the event still encodes once per format."""
    calls: list[str] = []

    def shouting(encoded: EncodedEvent) -> bytes:
        calls.append(encoded.event.id)
        return encoded.data_json.upper()

    encoded = EncodedEvent(Event("id-2", "/t", "2026-01-01T00:00:00.000Z", None), b'{"a":"b"}')
    assert [encoded.frame(shouting) for _ in range(3)] == [b'{"A":"B"}'] * 3
    assert calls == ["id-2"]


def test_the_gap_signal_is_written_by_each_transport() -> None:
    notice = gap_notice("/t", "id-1", "why")
    body = {"topic": "/t", "last_event_id": "id-1", "detail": "why"}
    assert json.loads(ws_reply(notice)) == {"type": "gap", **body}
    assert (
        sse_reply(notice)
        == b"event: gap\ndata: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"
    )
    assert ws_reply(Reply('{"type":"ack"}')) == '{"type":"ack"}'
    assert sse_reply(Reply('{"type":"ack"}')) == b""  # socket replies are not streamed
