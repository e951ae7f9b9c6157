"""A derived topic for the multi-process tests: clicks counted per page and second.

The broker comes from ``BROKER_URL`` and channels start with ``CHANNEL_PREFIX``; each count
names the process that computed it (``by``), so a test can tell the owner.
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
    title="Processing test app", broker=os.environ.get("BROKER_URL", "memory://")
)
PREFIX = os.environ.get("CHANNEL_PREFIX", "")


@streaming.publish("/clicks/{page}", channel=PREFIX + "clicks.{page}")
async def click(event: Click, page: str) -> Click:
    return event


@streaming.derive(
    "/clicks/{page}/per-second",
    source="/clicks/{page}",
    channel=PREFIX + "clicks.{page}.per-second",
    window=Tumbling(seconds=1),
    time="ts",
    idle=None,  # windows close only when the next second's clicks come
)
def per_second(window: Window[int], page: str) -> dict[str, Any]:
    return {"page": page, "start": window.start, "count": window.value, "by": os.getpid()}


app = FastAPI()
streaming.init_app(app)
