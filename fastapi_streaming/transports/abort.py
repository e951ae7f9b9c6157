"""Ending the connection of a client that stopped reading: the ``fastapi_streaming.connection``
ASGI extension.

ASGI lets an app end a response, not a connection. When an app gives up on a response whose
client does not read, the server closes the connection gracefully: it keeps it open until
everything already written has been read, which for a client that never reads is forever (and
the memory written to it stays with it). A server that offers this extension
(``fastapi-streaming run`` and :func:`fastapi_streaming.server.run` do) puts three callables of
the connection's transport in each HTTP and WebSocket scope, so the app can see whether its
writes were taken, close once they were, and abort (a TCP reset) when they cannot be.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypedDict, cast

import anyio
from starlette.types import Scope

EXTENSION = "fastapi_streaming.connection"
#: Seconds a client dropped for being too slow has to take its last message (an SSE ``close``
#: event, a WebSocket close frame) before its connection is aborted.
SLOW_CLIENT_GRACE = 5.0


class ConnectionControl(TypedDict):
    #: Bytes written to the connection that the client has not taken yet (still in the server).
    write_buffer_size: Callable[[], int]
    #: Close once what was written has been sent.
    close: Callable[[], None]
    #: Close now, discarding what was not sent: the client sees a reset.
    abort: Callable[[], None]


def connection_control(scope: Scope) -> ConnectionControl | None:
    """The connection's controls, if the server offers them."""
    control = scope.get("extensions", {}).get(EXTENSION)
    return cast(ConnectionControl, control) if isinstance(control, dict) else None


def offer_connection_control(scope: MutableMapping[str, Any], transport: Any) -> None:
    """What a server does for each HTTP request: put its transport's controls in the scope."""
    control: ConnectionControl = {
        "write_buffer_size": transport.get_write_buffer_size,
        "close": transport.close,
        "abort": transport.abort,
    }
    extensions = scope.setdefault("extensions", {})
    extensions[EXTENSION] = control


async def last_words(scope: Scope, send_last: Callable[[], Awaitable[None]], grace: float) -> bool:
    """Send a connection's last message and wait until the client took it, within ``grace``.

    True when it was taken (or handed to a server without the extension, which then decides);
    otherwise the connection is aborted, so that a client that stopped reading cannot keep it,
    and everything written to it, for as long as it lives.
    """
    control = connection_control(scope)
    with anyio.move_on_after(grace):
        await send_last()
        # The transport has no "drained" signal for the app to wait on: look a few times.
        while control is not None and control["write_buffer_size"]():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return True
    if control is not None:
        control["abort"]()
    return False
