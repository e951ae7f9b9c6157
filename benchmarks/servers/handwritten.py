"""What a FastAPI user writes without fastapi-streaming: sse-starlette over broadcaster.

The idiomatic version of the broadcaster and sse-starlette READMEs: every connected client
holds its own broadcaster subscription (its own unbounded queue) and JSON-encodes each event
for itself before the framework frames it.

Routes: ``GET /sse``, ``WS /ws``, ``POST /publish``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from broadcaster import Broadcast
from fastapi import FastAPI, WebSocket
from sse_starlette.sse import EventSourceResponse

broadcast = Broadcast("memory://")
CHANNEL = "bench"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await broadcast.connect()
    yield
    await broadcast.disconnect()


app = FastAPI(lifespan=lifespan)


@app.post("/publish", status_code=202)
async def publish(event: dict[str, Any]) -> dict[str, bool]:
    await broadcast.publish(CHANNEL, event)
    return {"published": True}


@app.get("/sse")
async def sse() -> EventSourceResponse:
    async def stream() -> AsyncIterator[dict[str, str]]:
        async with broadcast.subscribe(CHANNEL) as subscriber:
            async for event in subscriber:  # type: ignore[union-attr]
                yield {"data": json.dumps(event.message)}  # type: ignore[union-attr]

    return EventSourceResponse(stream())


@app.websocket("/ws")
async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    async with broadcast.subscribe(CHANNEL) as subscriber:
        async for event in subscriber:  # type: ignore[union-attr]
            await websocket.send_text(json.dumps(event.message))  # type: ignore[union-attr]
