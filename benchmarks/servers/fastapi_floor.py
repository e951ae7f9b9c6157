"""The bound's endpoints inside a FastAPI app: what FastAPI itself costs a streaming endpoint.

The bare app's SSE, WebSocket and publish handlers, unchanged, mounted as plain routes of a
FastAPI app: every request now passes FastAPI's and Starlette's middleware and routing, as any
endpoint of a FastAPI app does, and nothing else changes. The distance from the bound to this
server is the framework's price; the distance from here to fastapi-streaming is the library's.

Routes: ``GET /sse``, ``WS /ws``, ``POST /publish`` (the same as the bare app's).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from . import bare


class _Endpoint:
    """A plain ASGI endpoint calling one of the bare app's handlers."""

    def __init__(self, handler: str) -> None:
        self.handler = getattr(bare, handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handler(receive, send)


app = FastAPI()
app.router.routes += [
    Route("/sse", _Endpoint("serve_sse"), methods=["GET"]),
    Route("/publish", _Endpoint("publish"), methods=["POST"]),
    WebSocketRoute("/ws", _Endpoint("serve_ws")),
]
