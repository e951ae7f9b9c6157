"""Traces in one process (memory broker), read with the OpenTelemetry SDK's in-memory exporter:
the publish span, the trace context in the CloudEvents envelope, and one delivery span per
event however many clients it goes to. Across worker processes: tests/e2e/test_tracing_processes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from fastapi_streaming import StreamingAPI
from fastapi_streaming.fanout import ClientQueue


def traced_api() -> tuple[StreamingAPI, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    streaming = StreamingAPI(tracing=provider)

    @streaming.subscribe("/rooms/{room}")
    async def room(event: dict[str, Any], room: str) -> dict[str, Any]:
        return event

    return streaming, exporter


async def wait_for_spans(exporter: InMemorySpanExporter, count: int) -> list[ReadableSpan]:
    async def poll() -> None:
        while len(exporter.get_finished_spans()) < count:  # noqa: ASYNC110 - in-process state
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 5)
    return list(exporter.get_finished_spans())


async def test_a_publish_span_and_one_delivery_span_for_three_clients() -> None:
    streaming, exporter = traced_api()
    async with streaming.running() as runtime:
        queues = [ClientQueue(10, "sse") for _ in range(3)]
        for queue in queues:
            await runtime.subscribe(queue, "/rooms/42")
        event = await streaming.emit("/rooms/42", {"text": "hi"})
        spans = await wait_for_spans(exporter, 2)
        await asyncio.sleep(0.05)  # a second delivery span, if any, would be here by now
        spans = list(exporter.get_finished_spans())
        assert all(len(queue) == 1 for queue in queues)
    producers = [span for span in spans if span.kind is SpanKind.PRODUCER]
    consumers = [span for span in spans if span.kind is SpanKind.CONSUMER]
    assert len(producers) == 1 and len(consumers) == 1
    producer, consumer = producers[0], consumers[0]
    assert producer.name == "publish /rooms/{room}"
    assert producer.attributes is not None
    assert producer.attributes["messaging.message.id"] == event.id
    assert producer.attributes["fastapi_streaming.via"] == "emit"
    assert producer.attributes["messaging.destination.template"] == "/rooms/{room}"
    assert consumer.name == "process /rooms/{room}"
    assert consumer.attributes is not None
    assert consumer.attributes["fastapi_streaming.clients"] == 3
    assert consumer.attributes["messaging.message.id"] == event.id
    # A child of the producer's span, and linked to it.
    assert consumer.context is not None and producer.context is not None
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]


async def test_the_envelope_on_the_broker_carries_the_producer_span() -> None:
    streaming, exporter = traced_api()
    async with streaming.running() as runtime:
        seen: list[str] = []
        await runtime.broker.subscribe("rooms.7", lambda message: seen.append(message.message))
        event = await streaming.emit("/rooms/7", {"n": 1})
        spans = await wait_for_spans(exporter, 1)
    (producer,) = [span for span in spans if span.kind is SpanKind.PRODUCER]
    assert producer.context is not None
    envelope = json.loads(seen[0])
    assert envelope["id"] == event.id
    version, trace_id, span_id, flags = envelope["traceparent"].split("-")
    assert (version, trace_id, span_id) == (
        "00",
        f"{producer.context.trace_id:032x}",
        f"{producer.context.span_id:016x}",
    )
    assert int(flags, 16) & 1  # sampled
    assert event.traceparent == envelope["traceparent"]


async def test_without_tracing_the_envelope_carries_no_trace_context() -> None:
    streaming = StreamingAPI()

    @streaming.subscribe("/rooms/{room}")
    async def room(event: dict[str, Any], room: str) -> dict[str, Any]:
        return event

    async with streaming.running() as runtime:
        assert runtime.tracing is None and runtime.fanout.tracing is None
        seen: list[str] = []
        await runtime.broker.subscribe("rooms.7", lambda message: seen.append(message.message))
        await streaming.emit("/rooms/7", {"n": 1})
    assert "traceparent" not in json.loads(seen[0])


async def test_a_foreign_message_gets_a_root_delivery_span() -> None:
    streaming, exporter = traced_api()
    async with streaming.running() as runtime:
        queue = ClientQueue(10, "sse")
        await runtime.subscribe(queue, "/rooms/1")
        await runtime.broker.publish("rooms.1", '{"written": "by another system"}')
        (consumer,) = await wait_for_spans(exporter, 1)
    assert consumer.kind is SpanKind.CONSUMER
    assert consumer.parent is None and not consumer.links
