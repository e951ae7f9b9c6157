"""A partitioned derived topic for ``benchmarks.processing_scaleout``.

Clicks on ``/clicks/{page}`` counted per page and second into ``/clicks/per-second`` (keyed by
the page, ``BENCH_PARTITIONS`` partitions shared by the processes), on ``BENCH_BROKER``, with
channels prefixed by ``BENCH_PREFIX`` so runs on a shared Redis never meet.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI
from fastapi_streaming.processing import Tumbling, Window

PREFIX = os.environ.get("BENCH_PREFIX", "")


class Click(BaseModel):
    user: str
    ts: float


app = FastAPI()
streaming = StreamingAPI(
    title="Processing bench", version="1", broker=os.environ.get("BENCH_BROKER", "memory://")
)


@streaming.publish("/clicks/{page}", channel=PREFIX + "clicks.{page}")
async def click(event: Click, page: str) -> Click:
    return event


@streaming.derive(
    "/clicks/per-second",
    source="/clicks/{page}",
    channel=PREFIX + "clicks-per-second",
    window=Tumbling(seconds=1),
    time="ts",
    key="page",
    partitions=int(os.environ.get("BENCH_PARTITIONS", "6")),
    idle=None,
    max_queue=100_000,
)
def per_second(window: Window[int], page: str) -> dict[str, Any]:
    return {"page": page, "start": window.start, "count": window.value}


streaming.init_app(app)
