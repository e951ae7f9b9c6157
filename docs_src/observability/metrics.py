"""Prometheus metrics at /metrics."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI


class Reading(BaseModel):
    sensor: str
    value: float


streaming = StreamingAPI(title="Sensors", metrics_url="/metrics")


@streaming.subscribe("/sensors/{sensor}")
async def readings(event: Reading, sensor: str) -> Reading:
    return event


@streaming.publish("/sensors/{sensor}")
async def report(event: Reading, sensor: str) -> Reading:
    return event


app = FastAPI()
streaming.init_app(app)
