"""The metrics exporter against a running streaming API in this process (memory broker)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi_streaming import StreamingAPI
from fastapi_streaming.fanout import ClientQueue


async def wait_for(condition: Any, timeout: float = 5) -> None:
    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - a bounded poll of in-process state
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def test_sent_bytes_validation_drops_and_resume_gaps() -> None:
    streaming = StreamingAPI(metrics_url="/metrics")

    @streaming.subscribe("/rooms/{room}")
    async def room(event: dict[str, Any], room: str) -> dict[str, Any]:
        return event

    assert streaming.metrics is not None
    registry = streaming.metrics.registry
    async with streaming.running() as runtime:
        one, two = ClientQueue(10, "sse"), ClientQueue(10, "websocket")
        await runtime.subscribe(one, "/rooms/1")
        await runtime.subscribe(two, "/rooms/1")
        await streaming.emit("/rooms/1", {"text": "hi"})  # 13 bytes of data, to 2 clients
        # Another system writes something that is not a JSON object into the channel.
        await runtime.broker.publish("rooms.1", "42")
        await wait_for(lambda: sum(runtime.invalid.values()) == 1 and len(one) == 1)
        # A resume from an id the recent events do not reach: a gap.
        late = ClientQueue(10, "sse")
        await runtime.subscribe(
            late, "/rooms/1", last_event_id="01a23587-c5b2-7b69-bc49-ff8089b7c7cd"
        )
        streaming.metrics.sync()

        def value(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(name, labels)

        assert value("streaming_events_sent_total", topic="/rooms/{room}") == 2
        assert value("streaming_events_sent_bytes_total", topic="/rooms/{room}") == 2 * len(
            b'{"text":"hi"}'
        )
        assert value("streaming_events_dropped_total", reason="validation") == 1
        assert value("streaming_resumes_total", outcome="gap") == 1
        sse = {"topic": "/rooms/{room}", "transport": "sse"}
        websocket = {"topic": "/rooms/{room}", "transport": "websocket"}
        assert value("streaming_connections", **sse) == 2
        assert value("streaming_connections", **websocket) == 1
        assert value("streaming_clients") == 3
        await runtime.disconnect(one, ["/rooms/1"])
        streaming.metrics.sync()
        assert value("streaming_connections", **sse) == 1
        # Counters keep what ended streams sent.
        await runtime.disconnect(two, ["/rooms/1"])
        await runtime.disconnect(late, ["/rooms/1"])
        streaming.metrics.sync()
        assert value("streaming_events_sent_total", topic="/rooms/{room}") == 2
        assert value("streaming_connections", **sse) == 0
        assert value("streaming_connections", **websocket) == 0
