"""fastapi-websocket-pubsub, the existing FastAPI WebSocket pub/sub library, as documented.

Clients subscribe over its RPC protocol at ``WS /pubsub``; ``POST /publish`` hands each event to
``PubSubEndpoint.publish`` without waiting for the fan-out to finish (the library's own RPC
``publish`` offers the same with ``sync=False``), so a slow fan-out does not slow the producer.

It needs its own virtualenv: its dependency ``permit-broadcaster`` installs a package named
``broadcaster`` over the real one, which fastapi-streaming and the hand-written app use.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from fastapi_websocket_pubsub import PubSubEndpoint

TOPIC = "bench"

app = FastAPI()
endpoint = PubSubEndpoint()
endpoint.register_route(app, path="/pubsub")
running: set[asyncio.Task[None]] = set()


@app.post("/publish", status_code=202)
async def publish(event: dict[str, Any]) -> dict[str, bool]:
    task = asyncio.ensure_future(endpoint.publish([TOPIC], data=event))
    running.add(task)
    task.add_done_callback(running.discard)
    return {"published": True}
