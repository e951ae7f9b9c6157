"""The ways clients reach topics: WebSocket, Server-Sent Events and HTTP publish.

Transports know topics, the runtime and client queues; they never talk to a broker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from . import http, sse, websocket

if TYPE_CHECKING:
    from ..api import StreamingAPI


def build_router(streaming: StreamingAPI) -> APIRouter:
    """The routes of every transport, under the streaming API's prefix."""
    router = APIRouter()
    sse.add_routes(router, streaming)
    websocket.add_routes(router, streaming)
    http.add_routes(router, streaming)
    return router
