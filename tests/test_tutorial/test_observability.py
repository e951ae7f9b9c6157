"""docs_src/observability/tracing.py: a publish over HTTP and its fan-out, as spans."""

from __future__ import annotations

import asyncio

import httpx
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from fastapi_streaming.fanout import ClientQueue


async def test_tracing_page() -> None:
    from docs_src.observability.tracing import app, provider, streaming

    exporter = InMemorySpanExporter()  # beside the page's console exporter
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with app.router.lifespan_context(app):
        client = ClientQueue(10, "sse")
        await streaming.runtime.subscribe(client, "/sensors/s1")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            answer = await http.post(
                "/streams/publish/sensors/s1", json={"sensor": "s1", "value": 1.5}
            )
        assert answer.status_code == 202
        while len(exporter.get_finished_spans()) < 2:  # noqa: ASYNC110 - in-process state
            await asyncio.sleep(0.01)
    provider.force_flush()  # the page's console exporter writes now, not after pytest's capture
    spans = {span.kind: span for span in exporter.get_finished_spans()}
    publish, delivery = spans[SpanKind.PRODUCER], spans[SpanKind.CONSUMER]
    assert publish.name == "publish /sensors/{sensor}"
    assert publish.attributes is not None and publish.attributes["fastapi_streaming.via"] == "http"
    assert publish.resource.attributes["service.name"] == "sensors"
    assert delivery.name == "process /sensors/{sensor}"
    assert delivery.parent is not None and publish.context is not None
    assert delivery.parent.span_id == publish.context.span_id
    assert delivery.attributes is not None
    assert delivery.attributes["messaging.message.id"] == answer.json()["id"]
