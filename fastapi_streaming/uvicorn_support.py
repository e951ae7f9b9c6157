"""Plain uvicorn (``uvicorn app:app``) behaves as ``fastapi-streaming run`` does on two points.

**Shutdown.** Uvicorn waits for open connections before it runs the app's lifespan shutdown,
and an event stream never ends by itself: stopping the server would wait for the whole
``--timeout-graceful-shutdown`` (forever without one), then cancel the streams, each cancelled
task logged with a traceback. :func:`end_streams_on_shutdown` wraps ``uvicorn.Server.shutdown``
so that the streaming APIs of the app it serves end their streams first (SSE gets a final
``close`` event, sockets close with 1001), as :class:`~fastapi_streaming.server.StreamingServer`
does. It wraps
the method rather than catching signals: the server decides when it stops, whatever stopped it.

**Refused sockets.** A socket refused before its handshake gets an HTTP answer through the ASGI
denial-response extension. Uvicorn's ``websockets-sansio`` and ``wsproto`` protocols then log
``ASGI callable returned without completing handshake.`` at ERROR, although the handshake was
answered (a uvicorn defect: the denial path does not mark the handshake complete, unlike the
close path). :class:`RefusedHandshakeFilter` drops that line for the sockets this package
refused on purpose, and only for them.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any

#: Set in the task of a WebSocket this package refused with a denial response.
REFUSED = contextvars.ContextVar("fastapi_streaming_refused_websocket", default=False)
HANDSHAKE_ERROR = "ASGI callable returned without completing handshake."


class RefusedHandshakeFilter(logging.Filter):
    """Drops uvicorn's handshake error for a socket refused on purpose (see module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == HANDSHAKE_ERROR and REFUSED.get())


def refused_on_purpose() -> None:
    """Say that the current WebSocket was refused with an HTTP answer, not forgotten."""
    REFUSED.set(True)
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, RefusedHandshakeFilter) for existing in logger.filters):
        logger.addFilter(RefusedHandshakeFilter())


def end_streams_on_shutdown() -> None:
    """Make ``uvicorn.Server.shutdown`` end every stream first (once per process)."""
    try:
        import uvicorn
    except ImportError:  # pragma: no cover - another server runs the app
        return
    original: Callable[..., Awaitable[None]] = uvicorn.Server.shutdown
    if getattr(original, "ends_streams", False):
        return

    async def shutdown(self: uvicorn.Server, sockets: Any = None) -> None:
        from .runtime import StreamingRuntime

        served = served_apps(self.config)
        for runtime in list(StreamingRuntime.running):
            if any(runtime.dependency_overrides_provider is app for app in served):
                await runtime.end_streams()
        await original(self, sockets=sockets)

    shutdown.ends_streams = True  # type: ignore[attr-defined]
    uvicorn.Server.shutdown = shutdown  # type: ignore[method-assign]


def served_apps(config: Any) -> list[object]:
    """The app a uvicorn server serves, and every middleware around it.

    Only the streaming APIs of this server's app end their streams: a test may run several
    servers in one process (an app and a webhook receiver), and stopping one must leave the
    others' streams alone.
    """
    found: list[object] = []
    app = getattr(config, "loaded_app", None)
    while app is not None and not any(app is seen for seen in found) and len(found) < 50:
        found.append(app)
        app = getattr(app, "app", None)
    return found
