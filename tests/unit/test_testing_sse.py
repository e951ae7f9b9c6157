"""``stream_events``: Server-Sent Events in process, with a timeout instead of a hang."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_streaming import StreamingAPI
from fastapi_streaming.testing import ServerSentEvent, stream_events
from fastapi_streaming.testing.sse import _parse


def make_app() -> FastAPI:
    streaming = StreamingAPI(heartbeat=0.05)

    @streaming.subscribe("/ticks")
    async def ticks(event: int) -> int:
        return event

    @streaming.publish("/ticks")
    async def tick(event: int) -> int:
        return event

    app = FastAPI()
    streaming.init_app(app)
    return app


def test_events_arrive_parsed_and_heartbeats_are_skipped() -> None:
    with TestClient(make_app()) as client, stream_events(client, "/streams/sse/ticks") as events:
        assert events.status_code == 200
        assert events.headers["content-type"].startswith("text/event-stream")
        time.sleep(0.2)  # a few heartbeat comments go by
        published = client.post("/streams/publish/ticks", json=7).json()
        event = next(events)
    assert event == ServerSentEvent(data="7", id=published["id"])
    assert event.json() == 7


def test_a_missing_event_times_out() -> None:
    with TestClient(make_app()) as client, stream_events(client, "/streams/sse/ticks") as events:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            events.next(timeout=0.3)
    assert time.monotonic() - started < 5


def test_a_refused_stream_has_its_status_and_no_events() -> None:
    with TestClient(make_app()) as client, stream_events(client, "/streams/sse/nowhere") as events:
        assert events.status_code == 404
        assert list(events) == []
        assert b"No topic" in events.read()


def test_a_client_outside_its_lifespan_is_told_what_to_do() -> None:
    client = TestClient(make_app())
    with pytest.raises(RuntimeError, match="with TestClient"):
        with stream_events(client, "/streams/sse/ticks"):
            pass


def test_frames_are_parsed_like_eventsource_does() -> None:
    assert _parse(": ping") is None
    assert _parse("event: close\ndata: {}") == ServerSentEvent(data="{}", event="close")
    assert _parse("id: 1\ndata: a\ndata: b\nretry: 10") == ServerSentEvent(
        data="a\nb", id="1", retry=10
    )
