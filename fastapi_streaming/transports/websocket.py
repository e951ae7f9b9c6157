"""WebSocket: one topic at ``WS {prefix}/ws/{address}``, many at ``WS {prefix}/ws``.

A socket of one topic sends each event's data as it is; with ``?envelope=true`` it sends the
multiplexed socket's ``event`` message instead (``type``, ``topic``, ``id``, ``time``,
``data``), whose ``id`` a client passes back as ``?last_event_id=`` to resume.

One task per socket writes everything the client gets (events and replies, in order) from its
bounded queue; the socket's own task reads what the client sends. Close codes: 1001 when the
server shuts down, 1008 when the client is too slow for its queue, 1009 for an oversized
message, 4401 when the access token the socket was opened with expires (4000 + the 401 a
request with that token now gets, as for refused handshakes), 1008 when the client's plan
ends the socket (its quota is spent, its connection lasted its maximum, or on a socket of one
topic a publish over its rate), 1008 when an administrator disconnects the client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import HTTPException
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ..errors import InvalidPayload, MalformedMessage, StreamingError, TopicNotFound
from ..fanout import (
    DISCONNECTED,
    SHUTDOWN,
    SLOW_CLIENT,
    TOKEN_EXPIRED,
    ClientQueue,
    CloseReason,
    Reply,
)
from ..jsonwire import NonStandardNumber, loads
from ..limits.answers import QUOTA_EXCEEDED, QuotaExceeded
from ..security.access import Access
from ..snapshots import SNAPSHOT_FAILED
from ..topics import Mode, Topic
from .abort import SLOW_CLIENT_GRACE, last_words
from .common import (
    asks_for_snapshot,
    authorize,
    concrete_address,
    deny,
    end_at_expiry,
    error_text,
    expiry,
    from_http_exception,
    note_lease_plan,
    open_lease,
    owner_of,
    quota_reason,
)

if TYPE_CHECKING:
    from ..context import StreamingContext
    from ..events import EncodedEvent, Event
    from ..limits import Lease

logger = logging.getLogger("fastapi_streaming.websocket")

CLIENT_GONE = CloseReason("client_gone", "the client disconnected")
TOO_LARGE = CloseReason("too_large", "message too large")
CLOSE_CODES = {
    SHUTDOWN: 1001,
    SLOW_CLIENT: 1008,
    QUOTA_EXCEEDED: 1008,
    DISCONNECTED: 1008,
    TOO_LARGE.code: 1009,
    TOKEN_EXPIRED: 4401,
    SNAPSHOT_FAILED: 1013,
}


class SocketSession:
    """One accepted WebSocket: its queue, its subscriptions and its two loops."""

    def __init__(
        self,
        streaming: StreamingContext,
        websocket: WebSocket,
        queue: ClientQueue,
        render: Callable[[EncodedEvent], str],
        context: list[object],
    ) -> None:
        self.streaming = streaming
        self.websocket = websocket
        self.queue = queue
        self.render = render
        self.context = context
        self.subscriptions: list[str] = []
        #: (concrete address, mode) pairs already authorized: a scope may name the address.
        self._allowed: set[tuple[str, Mode]] = set()
        #: What the socket holds under its client's plans (None when the API enforces none).
        self.lease: Lease | None = None
        #: The socket ends when the token it was opened with expires.
        self.expires_at = expiry(context)

    async def run(self, on_message: Callable[[str | bytes], Awaitable[None]]) -> None:
        """Serve the socket until the client leaves, the server stops or the queue gives up."""
        timer = None
        try:
            async with anyio.create_task_group() as group:
                self.queue.on_close = lambda reason: (
                    group.cancel_scope.cancel() if reason.code == SLOW_CLIENT else None
                )
                group.start_soon(self._send_loop, group.cancel_scope)
                if self.expires_at is not None:
                    timer = end_at_expiry(self.queue, self.expires_at)
                await self._receive_loop(on_message)
                group.cancel_scope.cancel()
        finally:
            if timer is not None:
                timer.cancel()
            with anyio.CancelScope(shield=True):
                await self._close()
                if self.lease is not None:
                    await self.lease.release()  # first: it charges what the streams sent
                await self.streaming.runtime.disconnect(self.queue, self.subscriptions)

    async def _send_loop(self, scope: anyio.CancelScope) -> None:
        queue, send, render = self.queue, self.websocket.send, self.render
        while True:
            if not queue.ready:
                await queue.waiter()
            for item in queue.take():
                text = item.frame(ws_reply) if isinstance(item, Reply) else render(item)
                await send({"type": "websocket.send", "text": text})
            if queue.closed is not None and not queue.items:
                scope.cancel()
                return

    async def _receive_loop(self, on_message: Callable[[str | bytes], Awaitable[None]]) -> None:
        limit = self.streaming.max_message_size
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self.queue.close(CLIENT_GONE)
                return
            data: str | bytes | None = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            if len(data) > limit or (isinstance(data, str) and len(data.encode()) > limit):
                self.queue.close(CloseReason(TOO_LARGE.code, f"message larger than {limit} bytes"))
                return
            await on_message(data)
            if self.queue.closed is not None:
                return  # the message ended the socket (its plan refused it)

    async def _close(self) -> None:
        reason = self.queue.closed
        if reason is None or reason is CLIENT_GONE:
            return
        code = CLOSE_CODES.get(reason.code, 1011)

        async def send_close() -> None:
            await self.websocket.close(code=code, reason=reason.message[:120])

        # A client that does not read may never take the close frame, let alone acknowledge it:
        # past the grace period its connection is aborted.
        grace = SLOW_CLIENT_GRACE if reason.code == SLOW_CLIENT else 1.0
        await last_words(self.websocket.scope, send_close, grace)

    def reply_error(self, error: StreamingError, request_id: Any = None) -> None:
        self.queue.reply(error_text(error, request_id))

    def reply(self, message: dict[str, Any], *, first: bool = False) -> None:
        self.queue.reply(json.dumps(message, separators=(",", ":")), first=first)

    async def allow(self, topic: Topic, mode: Mode, address: str, params: dict[str, Any]) -> None:
        """Check (once per address and mode) that this socket's client may use ``address``."""
        if (address, mode) not in self._allowed:
            extra = await authorize(self.streaming, self.websocket, [Access(topic, mode, params)])
            self.context = list(dict.fromkeys([*self.context, *extra]))
            self._allowed.add((address, mode))

    async def _note_plan(self, topic: Topic, mode: Mode) -> None:
        if self.queue.owner is not None:
            await note_lease_plan(self.queue.owner, self.lease, topic, mode)

    async def publish(
        self, address: str, *, text: str | bytes | None = None, data: Any = None
    ) -> Any:
        runtime = self.streaming.runtime
        topic, _, params = runtime.resolve(address, Mode.PUBLISH)
        await self.allow(topic, Mode.PUBLISH, address, params)
        if self.lease is not None:
            await self.lease.publish(topic)
            await self._note_plan(topic, Mode.PUBLISH)
        return await runtime.publish(
            address, json_data=text, data=data, context=self.context, via="websocket"
        )

    async def request(
        self, address: str, data: Any, headers: Any
    ) -> tuple[Event | None, bytes | None]:
        """Publish, and get the reply of a request/reply topic (its JSON, or None)."""
        runtime = self.streaming.runtime
        topic, _, params = runtime.resolve(address, Mode.PUBLISH)
        await self.allow(topic, Mode.PUBLISH, address, params)
        if headers is not None and not isinstance(headers, dict):
            raise MalformedMessage('"headers" must be a JSON object.')
        if self.lease is not None:
            await self.lease.publish(topic)
            await self._note_plan(topic, Mode.PUBLISH)
        return await runtime.request(
            address, data=data, context=self.context, headers=headers, via="websocket"
        )


async def serve_one_topic(streaming: StreamingContext, websocket: WebSocket, address: str) -> None:
    runtime = streaming.runtime
    try:
        found = streaming.topics.resolve(address)
        if found is None:
            raise TopicNotFound(address)
        topic, params = found
        first = Mode.SUBSCRIBE if topic.subscribe is not None else Mode.PUBLISH
        context = await authorize(streaming, websocket, [Access(topic, first, params)])
    except StreamingError as error:
        await deny(websocket, error)
        return
    except HTTPException as exc:  # from the user's authenticator
        await deny(websocket, from_http_exception(exc))
        return
    queue = ClientQueue(topic.max_queue or streaming.max_queue, "websocket")
    owner = owner_of(streaming, websocket, context, queue)
    lease = await open_lease(streaming, websocket, context, queue)
    if lease is not None:
        try:
            await lease.add([(topic, first)])
        except StreamingError as error:
            await lease.release()
            await deny(websocket, error)
            return
        await note_lease_plan(owner, lease, topic, first)
    await websocket.accept()
    runtime.fanout.connect(queue)
    envelope = websocket.query_params.get("envelope", "").lower() in ("1", "true", "yes")
    render = _render_envelope if envelope else _render_data
    session = SocketSession(streaming, websocket, queue, render, context)
    session.lease = lease
    session._allowed.add((address, first))
    if topic.subscribe is not None:
        last_event_id = websocket.query_params.get("last_event_id")
        snapshot = asks_for_snapshot(websocket.query_params.get("snapshot"))
        try:
            await runtime.subscribe(queue, address, last_event_id=last_event_id, snapshot=snapshot)
        except StreamingError as error:
            # The socket has nothing else to do: close it, 1013 "try again later" for a 503.
            if lease is not None:
                await lease.release()
            await runtime.disconnect(queue, [])
            status = error.status_code
            code = 1013 if status == 503 else 4000 + status if 400 <= status < 500 else 1011
            await websocket.close(code=code, reason=str(error.detail)[:120])
            return
        session.subscriptions.append(address)
        if lease is not None:
            await lease.track(topic, address)

    async def on_message(data: str | bytes) -> None:
        try:
            await session.publish(address, text=data)
        except QuotaExceeded as error:
            # One topic, no request ids: the socket ends, saying which limit and until when.
            queue.close(quota_reason(error.refusal))
        except StreamingError as error:
            session.reply_error(error)
        except HTTPException as exc:
            session.reply_error(from_http_exception(exc))
        except Exception:
            session.reply_error(_internal_error("an event"))

    await session.run(on_message)


async def serve_multiplexed(streaming: StreamingContext, websocket: WebSocket) -> None:
    try:
        context = await authorize(streaming, websocket, [])
    except StreamingError as error:
        await deny(websocket, error)
        return
    except HTTPException as exc:  # from the user's authenticator
        await deny(websocket, from_http_exception(exc))
        return
    queue = ClientQueue(streaming.max_queue, "websocket")
    owner_of(streaming, websocket, context, queue)
    lease = await open_lease(streaming, websocket, context, queue)
    await websocket.accept()
    streaming.runtime.fanout.connect(queue)
    session = SocketSession(streaming, websocket, queue, _render_envelope, context)
    session.lease = lease

    async def on_message(data: str | bytes) -> None:
        request_id = kind = None
        try:
            message = _control_message(data)
            request_id, kind = message.get("id"), message.get("type")
            await _handle_control(session, message)
        except StreamingError as error:
            session.reply_error(error, request_id)
        except HTTPException as exc:
            session.reply_error(from_http_exception(exc), request_id)
        except Exception:
            session.reply_error(_internal_error(f"a {kind!r} message"), request_id)

    await session.run(on_message)


def _control_message(data: str | bytes) -> dict[str, Any]:
    try:
        message = loads(data)
    except NonStandardNumber as exc:
        raise InvalidPayload(exc.detail()) from None
    except ValueError as exc:
        raise MalformedMessage(f"Messages must be JSON: {exc}") from None
    if not isinstance(message, dict):
        raise MalformedMessage('Messages must be JSON objects with a "type".')
    return message


async def _handle_control(session: SocketSession, message: dict[str, Any]) -> None:
    kind, request_id, address = message.get("type"), message.get("id"), message.get("topic")
    if kind not in ("subscribe", "unsubscribe", "publish"):
        raise MalformedMessage(
            f"Unknown message type {kind!r}: use subscribe, unsubscribe or publish."
        )
    if not isinstance(address, str) or not address.startswith("/"):
        raise MalformedMessage('Name the topic\'s address in "topic", starting with "/".')
    runtime = session.streaming.runtime
    ack: dict[str, Any] = {"type": "ack", "id": request_id}
    lease = session.lease
    if kind == "subscribe":
        topic, _, params = runtime.resolve(address, Mode.SUBSCRIBE)
        await session.allow(topic, Mode.SUBSCRIBE, address, params)
        if lease is not None:
            await lease.add([(topic, Mode.SUBSCRIBE)])
            await session._note_plan(topic, Mode.SUBSCRIBE)
        if address not in session.subscriptions:
            last_event_id = message.get("last_event_id")
            if last_event_id is not None and not isinstance(last_event_id, str):
                raise MalformedMessage('"last_event_id" must be a string.')
            snapshot = message.get("snapshot", False)
            if not isinstance(snapshot, bool):
                raise MalformedMessage('"snapshot" must be true or false.')
            session.queue.hold()  # the ack goes out before the events it brings
            try:
                await runtime.subscribe(
                    session.queue, address, last_event_id=last_event_id, snapshot=snapshot
                )
                session.subscriptions.append(address)
                if lease is not None:
                    await lease.track(topic, address)
                session.reply(ack, first=True)
            finally:
                session.queue.release()
            return
    elif kind == "unsubscribe":
        if address in session.subscriptions:
            session.subscriptions.remove(address)
            if lease is not None:
                lease.untrack(address)
                await lease.count(runtime.resolve(address, Mode.SUBSCRIBE)[0], Mode.SUBSCRIBE)
            await runtime.unsubscribe(session.queue, address)
    else:
        event, reply = await session.request(address, message.get("data"), message.get("headers"))
        ack["event_id"] = event.id if event is not None else None
        if reply is not None:  # the reply comes first: once the ack is in, so is the reply
            session.reply(
                {"type": "reply", "id": request_id, "topic": address, "data": json.loads(reply)}
            )
    session.reply(ack)


def ws_text_frame(encoded: EncodedEvent) -> str:
    """The text frame of an event on a socket of one topic: the event's data."""
    return encoded.data_json.decode()


def ws_envelope_frame(encoded: EncodedEvent) -> str:
    """The text frame of an event on the multiplexed socket: an ``event`` message."""
    event = encoded.event
    head = json.dumps(
        {"type": "event", "topic": event.topic, "id": event.id, "time": event.time},
        separators=(",", ":"),
    )
    return head[:-1] + ',"data":' + encoded.frame(ws_text_frame) + "}"


def ws_reply(reply: Reply) -> str:
    """A reply to this socket's client: its own text, or a signal of the core as a message."""
    if reply.text is not None:
        return reply.text
    return json.dumps({"type": reply.signal, **reply.body}, separators=(",", ":"))


def _render_data(event: EncodedEvent) -> str:
    return event.frame(ws_text_frame)


def _render_envelope(event: EncodedEvent) -> str:
    return event.frame(ws_envelope_frame)


def _internal_error(what: str) -> StreamingError:
    """A bug met while handling one message: logged, answered, and the socket carries on."""
    logger.exception("Handling %s of a WebSocket client failed", what)
    error = StreamingError("The server failed to handle this message; it was not applied.")
    error.status_code, error.error = 500, "internal_error"
    return error


class SocketEndpoint:
    """The WebSocket routes as plain ASGI apps: nothing wraps the socket's sends."""

    def __init__(self, streaming: StreamingContext, *, many: bool) -> None:
        self.streaming = streaming
        self.many = many

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        if self.many:
            await serve_multiplexed(self.streaming, websocket)
        else:
            address = concrete_address(websocket.path_params["address"])
            await serve_one_topic(self.streaming, websocket, address)


def add_routes(routes: list[BaseRoute], streaming: StreamingContext) -> None:
    prefix = streaming.prefix
    routes.append(WebSocketRoute(prefix + "/ws", SocketEndpoint(streaming, many=True)))
    routes.append(
        WebSocketRoute(prefix + "/ws/{address:path}", SocketEndpoint(streaming, many=False))
    )
