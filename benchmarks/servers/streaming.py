"""fastapi-streaming: one topic, the shape of the README, its broker from ``BENCH_BROKER``.

Routes (the library's wire contract): ``GET /streams/sse/bench/{room}``,
``WS /streams/ws/bench/{room}``, ``POST /streams/publish/bench/{room}``. Each run uses a fresh
room, so runs on a shared Redis never see each other's events.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from fastapi_streaming import StreamingAPI

app = FastAPI()
streaming = StreamingAPI(
    title="Bench", version="1", broker=os.environ.get("BENCH_BROKER", "memory://")
)


@streaming.subscribe("/bench/{room}")
@streaming.publish("/bench/{room}")
async def bench(event: dict[str, Any], room: str) -> dict[str, Any]:
    return event


streaming.init_app(app)
