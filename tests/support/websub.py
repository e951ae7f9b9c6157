"""Real WebSub parties for tests: subscriber servers on 127.0.0.1 and an in-process hub server.

Both are real uvicorn servers on free ports in the test's event loop; the hub calls the
subscribers over real HTTP, and the tests talk to the hub over real HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.support.server import free_port


@dataclass
class Received:
    """One request the subscriber received."""

    method: str
    path: str
    query: dict[str, str]
    headers: httpx.Headers
    body: bytes
    at: float


@dataclass
class Behaviour:
    """How one callback path answers."""

    #: "echo" the challenge, answer "wrong", or "refuse" with 404.
    verify: str = "echo"
    #: Statuses for successive deliveries; the last one repeats (empty: 204).
    statuses: list[int] = field(default_factory=list)
    #: Seconds to wait before answering a delivery.
    delay: float = 0.0


class Subscriber:
    """A WebSub subscriber server: confirms or refuses verifications, records deliveries."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port()
        self.requests: list[Received] = []
        self.behaviours: dict[str, Behaviour] = {}
        self._arrived = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def url(self, path: str = "/callback") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def behave(self, path: str, **options: Any) -> str:
        """Set how ``path`` answers; returns its callback URL."""
        self.behaviours[path] = Behaviour(**options)
        return self.url(path)

    # -- what arrived ------------------------------------------------------------------------

    def verifications(self, path: str | None = None) -> list[Received]:
        return [
            r
            for r in self.requests
            if r.method == "GET"
            and r.query.get("hub.mode") != "denied"
            and (path is None or r.path == path)
        ]

    def denials(self, path: str | None = None) -> list[Received]:
        return [
            r
            for r in self.requests
            if r.method == "GET"
            and r.query.get("hub.mode") == "denied"
            and (path is None or r.path == path)
        ]

    def deliveries(self, path: str | None = None) -> list[Received]:
        return [r for r in self.requests if r.method == "POST" and (path is None or r.path == path)]

    async def wait_until(
        self, condition: Callable[[], bool], timeout: float = 10, what: str = "condition"
    ) -> None:
        async def poll() -> None:
            while not condition():
                self._arrived.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), 0.2)

        try:
            await asyncio.wait_for(poll(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}; received: "
                f"{[(r.method, r.path, r.query.get('hub.mode')) for r in self.requests][-10:]}"
            ) from None

    # -- serving -----------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        received = Received(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers=httpx.Headers(request.headers.raw),
            body=body,
            at=time.monotonic(),
        )
        behaviour = self.behaviours.get(received.path, Behaviour())
        self.requests.append(received)
        self._arrived.set()
        if request.method == "GET":
            if received.query.get("hub.mode") == "denied":
                return Response(status_code=200)
            if behaviour.verify == "refuse":
                return Response(status_code=404)
            if behaviour.verify == "wrong":
                return PlainTextResponse("not-the-challenge")
            return PlainTextResponse(received.query.get("hub.challenge", ""))
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        index = len(self.deliveries(received.path)) - 1
        statuses = behaviour.statuses or [204]
        return Response(status_code=statuses[min(index, len(statuses) - 1)])

    async def __aenter__(self) -> Subscriber:
        app = Starlette(routes=[Route("/{rest:path}", self._handle, methods=["GET", "POST"])])
        self._server, self._task = await serve(app, self.port, lifespan="off", host=self.host)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None and self._task is not None
        await stop(self._server, self._task)


async def serve(
    app: Any, port: int, *, lifespan: str = "on", host: str = "127.0.0.1"
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Start a uvicorn server for ``app`` in this event loop; return once it listens."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan=lifespan, ws="none"
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped before it started")
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start in 10 s")
        await asyncio.sleep(0.01)
    return server, task


async def stop(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, 20)


@contextlib.asynccontextmanager
async def running_app(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` (with its lifespan) on a free port; yields its base URL."""
    port = free_port()
    server, task = await serve(app, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await stop(server, task)


async def subscribe(
    hub_base: str,
    topic: str,
    callback: str,
    *,
    mode: str = "subscribe",
    **extra: str,
) -> httpx.Response:
    """POST a subscription request to the hub, as a subscriber would."""
    form = {"hub.mode": mode, "hub.topic": topic, "hub.callback": callback}
    form.update({f"hub.{key}": value for key, value in extra.items()})
    async with httpx.AsyncClient(base_url=hub_base, timeout=10) as http:
        return await http.post("/streams/websub/hub", data=form)


async def publish(hub_base: str, address: str, data: Any) -> str:
    """Publish an event over HTTP; returns its id."""
    async with httpx.AsyncClient(base_url=hub_base, timeout=10) as http:
        answer = await http.post("/streams/publish" + address, json=data)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])
