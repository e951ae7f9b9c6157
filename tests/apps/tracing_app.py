"""The app of the tracing tests: traces on, each worker exporting its spans to a file.

``TRACES_DIR`` is where each worker process writes ``spans-<pid>.jsonl``
(:mod:`tests.support.span_files`); every response names the worker that made it in
``X-Worker-Pid``, so a test knows which process serves each of its streams.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_streaming import StreamingAPI
from tests.support.span_files import JsonLinesSpanExporter

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(os.environ["TRACES_DIR"])))

streaming = StreamingAPI(
    title="Tracing test app", broker=os.environ.get("BROKER_URL", "memory://"), tracing=provider
)
PREFIX = os.environ.get("CHANNEL_PREFIX", "")


@streaming.subscribe("/rooms/{room}", channel=PREFIX + "rooms.{room}")
async def room(event: dict[str, Any], room: str) -> dict[str, Any]:
    return event


@streaming.publish("/rooms/{room}", channel=PREFIX + "rooms.{room}")
async def say(event: dict[str, Any], room: str) -> dict[str, Any]:
    return event


class WorkerPid:
    """Adds ``X-Worker-Pid`` to every HTTP response (a pure ASGI middleware: streams stay
    streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.pid = str(os.getpid()).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_pid(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-worker-pid", self.pid)]
            await send(message)

        await self.app(scope, receive, send_with_pid if scope["type"] == "http" else send)


app = FastAPI()
streaming.init_app(app)
app.add_middleware(WorkerPid)


@app.post("/test/emit/{room}")
async def emit(room: str, body: dict[str, Any]) -> dict[str, str]:
    """Server code publishing (``emit``), as a feed or a background job would."""
    event = await streaming.emit(f"/rooms/{room}", body)
    return {"id": event.id}
