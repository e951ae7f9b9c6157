"""Serve the stream routes from the top of the app, past the layers a stream does not need.

A stream's request lasts as long as the stream, and each layer it passes through keeps a frame
alive for that long. In a FastAPI app those are its error, telemetry, body-limit, exception
and exit-stack middleware and its router: about 4.5 KiB per connection, a quarter of an idle
SSE client's memory. The SSE and WebSocket endpoints answer their own errors and read no
request body, so, when every layer of the app is FastAPI's own, they are matched first and
served directly; every other request goes through the app as before.

An app with middleware of its own (CORS, sessions, an auth check, OpenTelemetry's) keeps
every stream request going through it: what it adds must reach the streams too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from starlette.applications import Starlette
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.routing import BaseRoute, Match, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send


class StreamRoutesFirst:
    """The app's middleware stack, with the stream routes served ahead of it."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        #: The stack it wraps (named ``app``, as in middleware, so tools that walk a stack
        #: find what is below).
        self.app = app
        #: Each route and its endpoint, called directly once the route matched in full (its
        #: method too), as the route itself would.
        self.routes = [
            (route, route.app) for route in routes if isinstance(route, Route | WebSocketRoute)
        ]

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Returns the endpoint's coroutine rather than awaiting it: no frame of this layer
        # stays alive for as long as the stream lasts.
        if scope["type"] in ("http", "websocket"):
            for route, endpoint in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    return endpoint(scope, receive, send)
        return self.app(scope, receive, send)


def serve_streams_first(app: Starlette, routes: Sequence[BaseRoute]) -> None:
    """Put ``routes`` ahead of ``app``'s middleware stack when nothing in it is the user's.

    Called once the app has started, when its stack is built and no middleware can be added.
    """
    stack = app.middleware_stack
    if isinstance(stack, ServerErrorMiddleware) and not app.user_middleware:
        app.middleware_stack = StreamRoutesFirst(stack, routes)
