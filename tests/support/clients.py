"""Small helpers over the real clients the tests use (httpx-sse and websockets)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx_sse
from websockets.asyncio.client import ClientConnection, connect


class SSEClient:
    """An open event stream whose events are collected in the background."""

    def __init__(self) -> None:
        self.events: list[httpx_sse.ServerSentEvent] = []
        self.arrived = asyncio.Event()
        self.response: httpx.Response | None = None
        self.ended = asyncio.Event()

    async def wait_for(self, count: int, timeout: float = 10) -> list[httpx_sse.ServerSentEvent]:
        async def enough() -> None:
            while len(self.events) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.events

    def data(self) -> list[Any]:
        # httpx-sse also yields the empty blocks that follow heartbeat comments: skip them.
        return [
            json.loads(event.data) for event in self.events if event.event != "close" and event.data
        ]


@asynccontextmanager
async def sse_stream(
    base_url: str, path: str, *, headers: dict[str, str] | None = None, **params: Any
) -> AsyncIterator[SSEClient]:
    """Open ``path``; yields once the response headers arrived (the client is subscribed)."""
    client = SSEClient()
    opened = asyncio.Event()
    async with httpx.AsyncClient(base_url=base_url, timeout=None) as http:

        async def read() -> None:
            try:
                async with httpx_sse.aconnect_sse(
                    http, "GET", path, params=params, headers=dict(headers or {})
                ) as source:
                    client.response = source.response
                    opened.set()
                    async for event in source.aiter_sse():
                        client.events.append(event)
                        client.arrived.set()
            finally:
                opened.set()
                client.ended.set()
                client.arrived.set()

        task = asyncio.create_task(read())
        await asyncio.wait_for(opened.wait(), 10)
        try:
            yield client
        finally:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, httpx.HTTPError):
                pass


@asynccontextmanager
async def websocket(url: str, **options: Any) -> AsyncIterator[ClientConnection]:
    async with connect(url, open_timeout=10, **options) as ws:
        yield ws


async def receive_json(ws: ClientConnection, timeout: float = 10) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def send_json(ws: ClientConnection, message: Any) -> None:
    await ws.send(json.dumps(message))


async def post(base_url: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        return await http.post(path, **kwargs)
