"""The upper bound: a bare ASGI app that does the least work a Python ASGI server allows.

Each published event is framed once (one SSE frame, one WebSocket text) and the same object is
appended to every client's list; each client's writer sends everything pending in one ASGI
message (SSE) or back to back (WebSocket). No framework, no validation, no broker: whatever a
library adds on top of this is its cost.

Routes: ``GET /sse``, ``WS /ws``, ``POST /publish`` (the body is the event's JSON).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Receive, Scope, Send

SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
ACCEPTED = [(b"content-type", b"application/json"), (b"content-length", b"2")]


class Client:
    __slots__ = ("gone", "pending", "wake")

    def __init__(self) -> None:
        self.pending: list[Any] = []
        self.wake = asyncio.Event()
        self.gone = False


sse_clients: set[Client] = set()
ws_clients: set[Client] = set()
counter = 0


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind, path = scope["type"], scope.get("path")
    if kind == "http" and path == "/sse":
        await serve_sse(receive, send)
    elif kind == "websocket" and path == "/ws":
        await serve_ws(receive, send)
    elif kind == "http" and path == "/publish":
        await publish(receive, send)
    elif kind == "lifespan":
        await lifespan(receive, send)
    elif kind == "http":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def publish(receive: Receive, send: Send) -> None:
    global counter
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    counter += 1
    frame = b"id: %d\ndata: %s\n\n" % (counter, body)
    for client in sse_clients:
        client.pending.append(frame)
        client.wake.set()
    if ws_clients:
        text = body.decode()
        for client in ws_clients:
            client.pending.append(text)
            client.wake.set()
    await send({"type": "http.response.start", "status": 202, "headers": ACCEPTED})
    await send({"type": "http.response.body", "body": b"{}"})


async def watch(receive: Receive, client: Client, end: str) -> None:
    while (await receive())["type"] != end:
        pass
    client.gone = True
    client.wake.set()


async def serve_sse(receive: Receive, send: Send) -> None:
    client = Client()
    sse_clients.add(client)
    watcher = asyncio.ensure_future(watch(receive, client, "http.disconnect"))
    try:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send({"type": "http.response.body", "body": b": open\n\n", "more_body": True})
        while True:
            await client.wake.wait()
            client.wake.clear()
            if client.gone:
                return
            batch, client.pending = client.pending, []
            await send({"type": "http.response.body", "body": b"".join(batch), "more_body": True})
    finally:
        sse_clients.discard(client)
        watcher.cancel()


async def serve_ws(receive: Receive, send: Send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    client = Client()
    ws_clients.add(client)
    watcher = asyncio.ensure_future(watch(receive, client, "websocket.disconnect"))
    try:
        while True:
            await client.wake.wait()
            client.wake.clear()
            if client.gone:
                return
            batch, client.pending = client.pending, []
            for text in batch:
                await send({"type": "websocket.send", "text": text})
    finally:
        ws_clients.discard(client)
        watcher.cancel()
