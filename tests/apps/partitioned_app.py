"""A derived topic split into key partitions, for the scale-out tests and benchmarks.

Clicks on ``/clicks/{page}`` are counted per page and second into one topic,
``/clicks/per-second``, keyed by the page; ``PARTITIONS`` (default 6) key partitions are
shared by the processes of the deployment. The broker comes from ``BROKER_URL``, channels
start with ``CHANNEL_PREFIX``, ``ALLOWED_LATENESS`` is the watermark's delay (0), and each
count names the process that computed it (``by``).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI
from fastapi_streaming.processing import Tumbling, Window


class Click(BaseModel):
    user: str
    ts: float


streaming = StreamingAPI(
    title="Partitioned processing test app", broker=os.environ.get("BROKER_URL", "memory://")
)
PREFIX = os.environ.get("CHANNEL_PREFIX", "")


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
    partitions=int(os.environ.get("PARTITIONS", "6")),
    idle=None,  # windows close when the next second's clicks come
    allowed_lateness=float(os.environ.get("ALLOWED_LATENESS", "0")),
    max_queue=100_000,  # one client reads every page's counts
)
def per_second(window: Window[int], page: str) -> dict[str, Any]:
    return {"page": page, "start": window.start, "count": window.value, "by": os.getpid()}


app = FastAPI()
streaming.init_app(app)
