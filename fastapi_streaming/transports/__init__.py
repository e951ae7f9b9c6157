"""The ways clients reach topics: WebSocket, Server-Sent Events and HTTP publish.

Transports know topics, the runtime and client queues; they never talk to a broker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from starlette.routing import BaseRoute

from . import http, openapi, sse, websocket

if TYPE_CHECKING:
    from ..context import StreamingContext


def stream_routes(streaming: StreamingContext) -> list[BaseRoute]:
    """The SSE and WebSocket routes: plain ASGI endpoints, for the app's own router.

    Added as they are rather than through ``include_router``, which wraps every request of an
    included plain route in a few more layers; a stream's request lasts as long as the stream,
    and with thousands of clients those layers are a sizeable share of each one's memory.
    """
    routes: list[BaseRoute] = []
    sse.add_routes(routes, streaming)
    websocket.add_routes(routes, streaming)
    return routes


def build_router(streaming: StreamingContext, *, asyncapi_docs_url: str | None = None) -> APIRouter:
    """The HTTP routes (publish, health), and each publish topic in the app's OpenAPI schema
    (linking to the AsyncAPI page at ``asyncapi_docs_url``)."""
    router = APIRouter()
    http.add_routes(router, streaming)
    # After the catch-all route that serves them: these only describe it.
    openapi.add_publish_docs(router, streaming, asyncapi_docs_url=asyncapi_docs_url)
    return router
