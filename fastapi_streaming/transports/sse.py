"""Server-Sent Events: ``GET {prefix}/sse/{address}`` and ``GET {prefix}/sse?topic=...``."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from ..errors import MalformedMessage, StreamingError
from ..fanout import SLOW_CLIENT, ClientQueue, CloseReason, Reply
from ..security.access import Access
from ..topics import Mode
from .abort import SLOW_CLIENT_GRACE, connection_control, last_words
from .common import (
    asks_for_snapshot,
    authorize,
    concrete_address,
    end_at_expiry,
    error_response,
    expiry,
    from_http_exception,
    note_lease_plan,
    open_lease,
    owner_of,
)

if TYPE_CHECKING:
    from ..context import StreamingContext
    from ..events import EncodedEvent
    from ..limits import Lease
    from ..runtime import StreamingRuntime

HEARTBEAT = b": ping\n\n"
#: Sent first so clients and proxies see the stream is open before any event arrives.
OPENING = b": stream open\n\n"
CLIENT_GONE = CloseReason("client_gone", "the client disconnected")


#: The same headers for every stream (no body, so no Content-Length, like StreamingResponse).
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class EventStream:
    """Streams one client's queue as ``text/event-stream`` until either side ends it.

    Pending events are written in one chunk, so a client that fell behind catches up with one
    write. Idle streams get a comment line from the fan-out's heartbeat ticker, which keeps proxies
    from closing them. A plain ASGI app with slots rather than a Starlette ``Response``: one
    exists per connected client for as long as it stays.
    """

    __slots__ = ("addresses", "expires_at", "lease", "named", "queue", "runtime")

    def __init__(
        self,
        runtime: StreamingRuntime,
        queue: ClientQueue,
        addresses: list[str],
        *,
        named: bool,
        expires_at: float | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.runtime = runtime
        self.lease = lease
        self.queue = queue
        self.addresses = addresses
        self.named = named
        self.expires_at = expires_at

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Write the stream in a task of its own until it ends, watching for the client leaving.

        The writer does not run here: a task resumes its whole stack of coroutines on every
        wake-up, and here that stack is the app's middleware and routing, a dozen frames deep,
        for every batch of every client.
        """
        queue = self.queue
        writer = watcher = timer = None
        try:
            # A copy: middleware may add headers to the message's list in place.
            headers = list(HEADERS)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": OPENING, "more_body": True})
            writer = asyncio.create_task(self._write(send))
            watcher = asyncio.create_task(self._watch_disconnect(receive, writer))
            # A client that stopped reading can block a write forever: when its queue gives up
            # on it, abandon the write and drop the connection.
            queue.on_close = partial(abandon_if_slow, writer)
            if self.expires_at is not None:
                timer = end_at_expiry(queue, self.expires_at)
            await writer
        finally:
            if timer is not None:
                timer.cancel()
            for task in (writer, watcher):
                if task is not None:
                    task.cancel()
            await asyncio.shield(self._leave())
        if queue.closed is not None and queue.closed.code == SLOW_CLIENT:
            await end_slow_stream(scope, send, queue.closed)

    async def _leave(self) -> None:
        if self.lease is not None:
            await self.lease.release()  # first: it charges what the streams sent
        await self.runtime.disconnect(self.queue, self.addresses)

    async def _watch_disconnect(self, receive: Receive, writer: asyncio.Task[None]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.queue.close(CLIENT_GONE)
        writer.cancel()  # it may be stuck writing to the departed client

    async def _write(self, send: Send) -> None:
        queue, named = self.queue, self.named
        try:
            while True:
                if not queue.ready:
                    await queue.waiter()
                batch = queue.take()
                if batch:
                    body = _frames(batch, named)
                elif queue.heartbeat_due:
                    body = HEARTBEAT
                else:
                    body = b""
                queue.heartbeat_due = False
                if body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                if queue.closed is not None and not queue.items:
                    break
            await send({"type": "http.response.body", "body": _final_frame(queue.closed)})
        except asyncio.CancelledError:
            if queue.closed is None:
                raise
            # Abandoned: the client left, or stopped reading and was dropped.


def sse_frame(encoded: EncodedEvent) -> bytes:
    """The frame of an event on a stream of one topic: ``id`` and ``data``."""
    return b"id: " + encoded.event.id.encode() + b"\ndata: " + encoded.data_json + b"\n\n"


def sse_named_frame(encoded: EncodedEvent) -> bytes:
    """The frame of an event on a multi-topic stream: ``event`` names the topic."""
    event = encoded.event
    return (
        b"id: "
        + event.id.encode()
        + b"\nevent: "
        + event.topic.encode()
        + b"\ndata: "
        + encoded.data_json
        + b"\n\n"
    )


def sse_reply(reply: Reply) -> bytes:
    """A signal of the core (``gap``) as an event named after it; socket replies are not sent."""
    if reply.signal is None:
        return b""
    data = json.dumps(reply.body, separators=(",", ":"))
    return b"event: " + reply.signal.encode() + b"\ndata: " + data.encode() + b"\n\n"


def _frames(batch: list[EncodedEvent | Reply], named: bool) -> bytes:
    """One chunk for everything pending: frames were encoded once, this only joins them."""
    encoder = sse_named_frame if named else sse_frame
    if len(batch) == 1 and not isinstance(batch[0], Reply):
        return batch[0].frame(encoder)
    return b"".join(
        item.frame(encoder) if not isinstance(item, Reply) else item.frame(sse_reply)
        for item in batch
    )


def abandon_if_slow(writer: asyncio.Task[None], reason: CloseReason) -> None:
    if reason.code == SLOW_CLIENT:
        writer.cancel()


async def end_slow_stream(scope: Scope, send: Send, reason: CloseReason) -> None:
    """End the stream of a client dropped for not reading, within a bounded time.

    It gets a last ``close`` event if it takes it within :data:`SLOW_CLIENT_GRACE` seconds, and
    then the connection closes; otherwise the connection is aborted. (A graceful close would
    wait for a client that does not read: the connection, and what was written to it, would
    stay for as long as the client lives.) Under a server without the connection extension,
    the server decides.
    """

    async def send_close_event() -> None:
        await send({"type": "http.response.body", "body": _final_frame(reason)})

    if await last_words(scope, send_close_event, SLOW_CLIENT_GRACE):
        control = connection_control(scope)
        if control is not None:
            control["close"]()  # not kept alive for a next request: the client was dropped


def _final_frame(reason: CloseReason) -> bytes:
    """A last ``close`` event, so clients can tell a deliberate end from a dropped connection."""
    body: dict[str, object] = {"reason": reason.code, "detail": reason.message}
    if reason.retry_after is not None:
        body["retry_after"] = reason.retry_after
    data = json.dumps(body, separators=(",", ":"))
    return b"event: close\ndata: " + data.encode() + b"\n\n"


async def open_stream(
    streaming: StreamingContext, request: Request, addresses: list[str], *, named: bool
) -> Response | EventStream:
    """Authorize, subscribe the new client to every address, and start its stream."""
    runtime = streaming.runtime
    try:
        if not addresses:
            raise MalformedMessage("Name at least one topic: ?topic=/some/address")
        resolved = [runtime.resolve(address, Mode.SUBSCRIBE) for address in addresses]
        context = await authorize(
            streaming,
            request,
            [Access(topic, Mode.SUBSCRIBE, params) for topic, _, params in resolved],
        )
    except StreamingError as error:
        return error_response(error)
    except HTTPException as exc:  # from the user's authenticator
        return error_response(from_http_exception(exc))
    accesses = [topic for topic, _, _ in resolved]
    size = accesses[0].max_queue if len(accesses) == 1 else None
    queue = ClientQueue(size or streaming.max_queue, "sse")
    owner = owner_of(streaming, request, context, queue)
    lease = await open_lease(streaming, request, context, queue)
    if lease is not None:
        try:
            await lease.add([(topic, Mode.SUBSCRIBE) for topic in accesses])
        except StreamingError as error:
            await lease.release()
            return error_response(error)
        for topic in accesses:
            await note_lease_plan(owner, lease, topic, Mode.SUBSCRIBE)
    runtime.fanout.connect(queue)
    runtime.fanout.heartbeats.add(queue)
    # EventSource sends Last-Event-ID when it reconnects; a first connection may pass the query.
    last_event_id = request.headers.get("last-event-id") or request.query_params.get(
        "last_event_id"
    )
    snapshot = asks_for_snapshot(request.query_params.get("snapshot"))
    joined: list[str] = []
    try:
        for topic, address in zip(accesses, addresses, strict=True):
            await runtime.subscribe(queue, address, last_event_id=last_event_id, snapshot=snapshot)
            joined.append(address)
            if lease is not None:
                await lease.track(topic, address)
    except BaseException as exc:
        if lease is not None:
            await asyncio.shield(lease.release())
        await asyncio.shield(runtime.disconnect(queue, joined))
        if isinstance(exc, StreamingError):  # e.g. 503: the history to resume from is unreachable
            return error_response(exc)
        raise
    return EventStream(runtime, queue, joined, named=named, expires_at=expiry(context), lease=lease)


class EventStreamEndpoint:
    """The SSE routes as plain ASGI apps: nothing wraps the stream's sends but the server."""

    def __init__(self, streaming: StreamingContext, *, many: bool) -> None:
        self.streaming = streaming
        self.many = many

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = await self.open(Request(scope, receive))
        # Only the stream stays referenced while it lasts, not the request it came from.
        await stream(scope, receive, send)

    async def open(self, request: Request) -> Response | EventStream:
        if self.many:
            addresses = list(dict.fromkeys(request.query_params.getlist("topic")))
        else:
            addresses = [concrete_address(request.path_params["address"])]
        return await open_stream(self.streaming, request, addresses, named=self.many)


def add_routes(routes: list[BaseRoute], streaming: StreamingContext) -> None:
    prefix = streaming.prefix
    routes.append(
        Route(prefix + "/sse", EventStreamEndpoint(streaming, many=True), methods=["GET"])
    )
    routes.append(
        Route(
            prefix + "/sse/{address:path}",
            EventStreamEndpoint(streaming, many=False),
            methods=["GET"],
        )
    )
