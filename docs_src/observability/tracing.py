"""OpenTelemetry traces: a span per publish and per fan-out, linked through the broker."""

from __future__ import annotations

import os

from fastapi import FastAPI
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI

# Where spans go: the console here; an OTLPSpanExporter sends them to a collector.
provider = TracerProvider(resource=Resource.create({"service.name": "sensors"}))
provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))


class Reading(BaseModel):
    sensor: str
    value: float


streaming = StreamingAPI(
    title="Sensors",
    broker=os.environ.get("BROKER_URL", "memory://"),
    tracing=provider,  # or True: the global provider (opentelemetry-instrument sets one)
)


@streaming.subscribe("/sensors/{sensor}")
async def readings(event: Reading, sensor: str) -> Reading:
    return event


@streaming.publish("/sensors/{sensor}")
async def report(event: Reading, sensor: str) -> Reading:
    return event


app = FastAPI()
streaming.init_app(app)
