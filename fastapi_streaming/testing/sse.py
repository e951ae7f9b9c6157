"""Read a Server-Sent Events topic in process, beside FastAPI's ``TestClient``.

``TestClient`` drives HTTP publish and WebSockets in process, but it waits for a response to
finish before it returns it, and an event stream never finishes. :func:`stream_events` calls
the app directly in the ``TestClient``'s event loop and hands the test an iterator of parsed
events, each awaited with a timeout, so a missing event fails the test instead of hanging it::

    with TestClient(app) as client, stream_events(client, "/streams/sse/stocks/AAPL") as events:
        client.post("/streams/publish/stocks/AAPL", json={"symbol": "AAPL", "price": 1.5})
        assert next(events).json() == {"symbol": "AAPL", "price": 1.5}

The stream is subscribed when :func:`stream_events` returns, so what the test publishes next
reaches it.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator, Mapping
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import anyio

if TYPE_CHECKING:
    from starlette.testclient import TestClient
    from starlette.types import Message

__all__ = ["EventStream", "ServerSentEvent", "stream_events"]


@dataclass(frozen=True)
class ServerSentEvent:
    """One event of a stream, as a browser's ``EventSource`` would see it."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """The event's data, parsed as JSON (fastapi-streaming sends JSON)."""
        return json.loads(self.data)


class EventStream:
    """An open event stream: its response head, then its events one by one.

    Iterating waits up to ``timeout`` seconds for each event and raises :class:`TimeoutError`
    when none comes; iteration stops when the server ends the stream. A refused request (401,
    404...) has its status in :attr:`status_code` and its body in :meth:`read`.
    """

    def __init__(self, messages: queue.Queue[Message], timeout: float) -> None:
        self._messages = messages
        self.timeout = timeout
        self.status_code = 0
        self.headers: dict[str, str] = {}
        self._buffer = b""
        self._ended = False
        self._pending: list[ServerSentEvent] = []

    def _message(self, timeout: float) -> Message:
        try:
            return self._messages.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(
                f"No event arrived on the stream in time ({timeout:.3g} s left)."
            ) from None

    def _start(self) -> None:
        message = self._message(self.timeout)
        if message["type"] == "error":
            raise message["error"]
        self.status_code = message["status"]
        self.headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in message["headers"]
        }

    def _more(self, timeout: float) -> bool:
        """Read the next chunk of the body; False once the stream has ended."""
        if self._ended:
            return False
        message = self._message(timeout)
        if message["type"] == "error":
            raise message["error"]
        self._buffer += message.get("body", b"").replace(b"\r\n", b"\n")
        self._ended = not message.get("more_body", False)
        return True

    def read(self) -> bytes:
        """The rest of the body (for a refused request: its error document)."""
        while self._more(self.timeout):
            pass
        body, self._buffer = self._buffer, b""
        return body

    def __iter__(self) -> Iterator[ServerSentEvent]:
        return self

    def __next__(self) -> ServerSentEvent:
        return self.next()

    def next(self, timeout: float | None = None) -> ServerSentEvent:
        """The next event, waiting at most ``timeout`` seconds (default: the stream's)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout  # heartbeats do not count as an event
        if self.status_code != 200:
            raise StopIteration
        while not self._pending:
            if b"\n\n" in self._buffer:
                frame, self._buffer = self._buffer.split(b"\n\n", 1)
                event = _parse(frame.decode())
                if event is not None:
                    self._pending.append(event)
                continue
            try:
                more = self._more(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise TimeoutError(f"No event arrived within {timeout} seconds.") from None
            if not more:
                raise StopIteration
        return self._pending.pop(0)


def _parse(frame: str) -> ServerSentEvent | None:
    """One frame; None for comments (heartbeats) and frames without data."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in frame.split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        else:
            fields[name] = value
    if not data:
        return None
    retry = fields.get("retry")
    return ServerSentEvent(
        data="\n".join(data),
        event=fields.get("event") or "message",
        id=fields.get("id"),
        retry=int(retry) if retry and retry.isdigit() else None,
    )


@contextmanager
def stream_events(
    client: TestClient,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> Iterator[EventStream]:
    """Open ``GET url`` on the client's app as an event stream; close it when the block ends.

    ``client`` must be entered (``with TestClient(app) as client:``): that runs the app's
    lifespan, which is when the streaming API runs.
    """
    portal = getattr(client, "portal", None)
    if portal is None:
        raise RuntimeError(
            "stream_events needs a running TestClient: use `with TestClient(app) as client:` "
            "so that the app's lifespan (and the streaming API) runs."
        )
    request = client.build_request("GET", url, params=params, headers=headers)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": request.url.scheme,
        "path": unquote(request.url.path),
        "raw_path": request.url.raw_path.split(b"?", 1)[0],
        "root_path": client.root_path if hasattr(client, "root_path") else "",
        "query_string": request.url.query,
        "headers": [(name.lower(), value) for name, value in request.headers.raw],
        "server": (request.url.host, request.url.port or 80),
        "client": ("testclient", 50000),
        "extensions": {},
        "state": getattr(client, "app_state", {}).copy(),
    }
    messages: queue.Queue[Message] = queue.Queue()
    leave = portal.call(anyio.Event)
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.put(message)

    async def serve() -> None:
        try:
            await client.app(scope, receive, send)
        except Exception as exc:  # handed to the test, which raises it
            messages.put({"type": "error", "error": exc})

    done: futures.Future[None] = portal.start_task_soon(serve)
    stream = EventStream(messages, timeout)
    try:
        stream._start()
        yield stream
    finally:
        portal.call(leave.set)
        try:
            done.result(timeout=timeout)
        except futures.TimeoutError:
            done.cancel()
