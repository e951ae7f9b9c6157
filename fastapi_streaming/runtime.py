"""What a running :class:`~fastapi_streaming.StreamingAPI` does: publish and deliver events.

The runtime exists between the app's lifespan startup and shutdown. Transports call it with
concrete addresses and payloads; it finds the topic, runs the handlers, talks to the broker
through one :class:`~fastapi_streaming.brokers.connection.BrokerConnection`, and feeds clients
through the :class:`~fastapi_streaming.fanout.Fanout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import pydantic_core
from broadcaster import Event as BrokerMessage
from pydantic import ValidationError

from .brokers.connection import BrokerConnection, BrokerUnavailable
from .brokers.extensions import HistoryBackend
from .dependencies import Overrides, call_handler
from .errors import (
    InvalidPayload,
    MalformedMessage,
    ModeNotAllowed,
    TopicNotFound,
    Unavailable,
)
from .events import EncodedEvent, Event, decode_message
from .fanout import SHUTDOWN, ClientQueue, CloseReason, Fanout, Prepare, Reply
from .jsonwire import NonStandardNumber, check_standard, dumps
from .owners import NO_PLAN, SERVER, owner_in
from .replay import events_after, events_since, uuid7_millis
from .replies import encode_reply, reply_address
from .snapshots import join_with_snapshot
from .topics import Mode, Operation, OverflowPolicy, Topic, TopicRegistry

if TYPE_CHECKING:
    from broadcaster import BroadcastBackend

    from .tracing import Tracing

logger = logging.getLogger("fastapi_streaming")


def validation_detail(exc: ValidationError, loc: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """pydantic's error list in the JSON-safe form FastAPI answers 422 with.

    ``loc`` goes in front of each error's location: ``("body",)`` for what a client sent, as
    FastAPI reports errors in request bodies (``["body", "price"]``).
    """
    errors = exc.errors(include_url=False)
    return [
        {
            key: [*loc, *error["loc"]] if key == "loc" else _json_safe(value)
            for key, value in error.items()
            if key != "ctx"
        }
        for error in errors
    ]


def _json_safe(value: Any) -> Any:
    """``value`` if standard JSON can carry it, else its ``repr`` (an input of NaN, say)."""
    try:
        dumps(value)
    except (NonStandardNumber, pydantic_core.PydanticSerializationError):
        return repr(value)
    return value


class StreamingRuntime:
    """The broker connection and the fan-out of one running streaming API."""

    #: Runtimes started in this process, so a server can end their streams before it stops.
    running: ClassVar[weakref.WeakSet[StreamingRuntime]] = weakref.WeakSet()

    def __init__(
        self,
        topics: TopicRegistry,
        backend: BroadcastBackend,
        *,
        broker_url: str,
        default_overflow: OverflowPolicy,
        publish_timeout: float = 5.0,
        heartbeat: float = 15.0,
        dependency_overrides_provider: Any = None,
    ) -> None:
        self.topics = topics
        #: The app whose ``dependency_overrides`` handlers' dependencies honour (as in FastAPI).
        self.dependency_overrides_provider = dependency_overrides_provider
        self.publish_timeout = publish_timeout
        self.heartbeat = heartbeat
        self.broker = BrokerConnection(backend, url=broker_url)
        self.fanout = Fanout(self.broker)
        self.default_overflow = default_overflow
        #: More sections of :meth:`health`, each made by its callable (producers add theirs).
        self.health_sections: dict[str, Callable[[], Any]] = {}
        #: Events published (by clients and ``emit``) and their payload bytes, by address
        #: template: one increment per publish, read by metrics.
        self.published: Counter[str] = Counter()
        self.published_bytes: Counter[str] = Counter()
        #: Events published since usage analytics last took them, by (principal, plan,
        #: template); server code's ``emit`` counts as principal ``(server)``. Kept only
        #: while something takes them (``fanout.usage.tracking``).
        self.published_by: Counter[tuple[str, str, str]] = Counter()
        #: Broker events dropped because they do not match their topic's payload, by template.
        self.invalid: Counter[str] = Counter()
        #: Resumes (``Last-Event-ID``) served, and those that could not be complete (a ``gap``).
        self.resumes = 0
        self.resume_gaps = 0
        #: Makes the publish spans (and, through the fan-out, the delivery spans) when traces
        #: are on; see :meth:`trace_with`.
        self.tracing: Tracing | None = None

    def trace_with(self, tracing: Tracing | None) -> None:
        """Make spans of every publish and fan-out from now on (None: stop)."""
        self.tracing = tracing
        self.fanout.tracing = tracing

    async def start(self) -> None:
        # anyio loads its event-loop backend on first use: 60 to 260 ms of imports that, inside
        # the first publish or WebSocket, would stop the loop and every client's stream with it.
        anyio.get_cancelled_exc_class()
        await self.broker.connect()
        self._heartbeats = asyncio.create_task(
            self.fanout.run_heartbeats(self.heartbeat), name="fastapi-streaming heartbeats"
        )
        StreamingRuntime.running.add(self)

    async def stop(self) -> None:
        StreamingRuntime.running.discard(self)
        self._heartbeats.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._heartbeats
        self.close_clients()
        for stream in tuple(self.fanout.streams.values()):
            await stream.stop()
        self.fanout.streams.clear()
        await self.broker.disconnect()

    def close_clients(self) -> None:
        """End every client stream: SSE streams finish, sockets close with 1001."""
        self.fanout.close_all(CloseReason(SHUTDOWN, "the server is shutting down"))

    async def end_streams(self, grace: float = 5.0) -> None:
        """Close every client stream and wait (up to ``grace`` seconds) for transports to end."""
        self.close_clients()
        with anyio.move_on_after(grace):
            while self.fanout.queues:  # noqa: ASYNC110 - transports leave on their own schedule
                await anyio.sleep(0.01)

    @property
    def dependency_overrides(self) -> Overrides | None:
        """The overrides in force now: read on each call, as tests set them at any time."""
        return getattr(self.dependency_overrides_provider, "dependency_overrides", None)

    # -- looking things up -------------------------------------------------------------------

    def resolve(self, address: str, mode: Mode) -> tuple[Topic, Operation, dict[str, Any]]:
        """The topic, operation and parameters of ``address``, or the error a client gets."""
        found = self.topics.resolve(address)
        if found is None:
            raise TopicNotFound(address)
        topic, params = found
        operation = topic.operation(mode)
        if operation is None:
            raise ModeNotAllowed(address, mode.value, [m.value for m in topic.modes])
        return topic, operation, params

    # -- client to broker -------------------------------------------------------------------

    async def publish(
        self,
        address: str,
        *,
        json_data: str | bytes | None = None,
        data: Any = None,
        context: Sequence[object] = (),
        via: str = "server",
    ) -> Event | None:
        """Validate a client's event, run the publish handler, and hand it to the broker.

        Returns the event, or None when the handler returned None (the event is dropped).
        On a topic with a reply, the reply is computed (and sent to its address) but not
        returned: see :meth:`request`. ``via`` names the transport, for traces.
        """
        event, _ = await self.request(
            address, json_data=json_data, data=data, context=context, via=via
        )
        return event

    async def request(
        self,
        address: str,
        *,
        json_data: str | bytes | None = None,
        data: Any = None,
        context: Sequence[object] = (),
        headers: Mapping[str, Any] | None = None,
        via: str = "server",
    ) -> tuple[Event | None, bytes | None]:
        """:meth:`publish`, and the JSON of the reply when the topic has one.

        On a topic with a reply the handler's return value is the reply (None: no reply)
        and the request itself goes to the broker; when the reply has an address, the reply
        is also published to the topic the request names there.
        """
        topic, operation, params = self.resolve(address, Mode.PUBLISH)
        value = _validate(operation, json_data=json_data, data=data)
        reply = operation.reply_for(value)
        target = reply_address(reply, value, headers) if reply is not None else None
        if target is not None and self.topics.resolve(target) is None:
            raise TopicNotFound(target)  # before anything is published
        # Without a handler the event passes through, and a reply topic has nothing to answer.
        result = value if reply is None else None
        if operation.plan is not None:
            result = await call_handler(
                operation.plan,
                event=value,
                params=params,
                context=context,
                overrides=self.dependency_overrides,
            )
        owner = owner_in(context)
        by = (owner.principal, owner.plan(topic.address)) if owner else (SERVER, NO_PLAN)
        if reply is None:
            if result is None:
                return None, None
            return await self._publish(topic, params, address, result, by, via), None
        event = await self._publish(topic, params, address, value, by, via)
        if result is None:
            return event, None
        answer, encoded = encode_reply(reply, result)
        if target is not None:
            await self.emit(target, answer)
        return event, encoded

    async def emit(self, address: str, payload: Any) -> Event:
        """Publish from server-side code: validated against the topic, no handler runs."""
        found = self.topics.resolve(address)
        if found is None:
            raise TopicNotFound(address)
        topic, params = found
        try:
            value = topic.payload_adapter.validate_python(payload)
        except ValidationError as exc:
            raise InvalidPayload(validation_detail(exc, ("body",))) from None
        return await self._publish(topic, params, address, value, via="emit")

    async def _publish(
        self,
        topic: Topic,
        params: dict[str, Any],
        address: str,
        value: Any,
        by: tuple[str, str] = (SERVER, NO_PLAN),
        via: str = "emit",
    ) -> Event:
        try:
            data_json = dumps(value)
        except NonStandardNumber as exc:
            raise InvalidPayload(exc.detail()) from None
        channel = topic.channel_for(params)
        tracing = self.tracing
        if tracing is None:
            event = Event.create(address, None)
            await self._send(channel, event, data_json)
        else:
            with tracing.publish(
                template=topic.address, address=address, channel=channel, via=via
            ) as trace:
                event = Event.create(
                    address, None, traceparent=trace.traceparent, tracestate=trace.tracestate
                )
                trace.sent(event.id)
                await self._send(channel, event, data_json)
        self.published[topic.address] += 1
        self.published_bytes[topic.address] += len(data_json)
        if self.fanout.usage.tracking:
            self.published_by[(by[0], by[1], topic.address)] += 1
        return event

    async def _send(self, channel: str, event: Event, data_json: bytes) -> None:
        """Hand the event's envelope to the broker, or tell the client to retry shortly."""
        try:
            with anyio.fail_after(self.publish_timeout):
                await self.broker.publish(channel, event.to_message(data_json))
        except (BrokerUnavailable, TimeoutError) as exc:
            raise Unavailable(
                f"The broker cannot take events right now ({exc or 'timed out'}); retry shortly.",
                headers={"Retry-After": "1"},
            ) from None

    async def health(self) -> dict[str, Any]:
        """What a readiness probe needs: is the broker reachable (asked, not assumed), and how
        busy is the fan-out."""
        reachable = await self.broker.reachable()
        return {
            "status": "ok" if reachable else "unavailable",
            "broker": {
                "url": self.broker.url_for_display,
                "connected": reachable,
                "reconnects": self.broker.reconnects,
                "channels": len(self.broker.channels),
            },
            "clients": len(self.fanout.queues),
            "streams": len(self.fanout.streams),
            **{name: section() for name, section in self.health_sections.items()},
        }

    # -- broker to client -------------------------------------------------------------------

    async def subscribe(
        self,
        queue: ClientQueue,
        address: str,
        *,
        last_event_id: str | None = None,
        snapshot: bool = False,
    ) -> Topic:
        """Send the events of ``address`` to ``queue`` from now on.

        With ``last_event_id``, first the events after it that history still holds, preceded
        by a ``gap`` notice when history cannot say it holds all of them. When the broker that
        keeps that history cannot be read, :class:`~fastapi_streaming.errors.Unavailable` is
        raised (503, ``Retry-After``) and ``queue`` is not subscribed to ``address``.

        With ``snapshot`` (a topic that has them: a table), first the current rows of the
        address, then the live events after them (see :mod:`fastapi_streaming.snapshots`);
        ``last_event_id`` is then ignored: the snapshot is the whole state.
        """
        topic, operation, params = self.resolve(address, Mode.SUBSCRIBE)
        channel = topic.channel_for(params)
        if snapshot:
            await join_with_snapshot(
                self.fanout,
                queue,
                topic,
                params,
                address=address,
                prepare=self._preparer(topic, operation, params, address),
                policy=topic.overflow or self.default_overflow,
            )
            return topic
        if last_event_id:
            queue.hold()  # live events wait behind the missed ones
        try:
            await self.fanout.join(
                queue,
                address=address,
                channel=channel,
                prepare=self._preparer(topic, operation, params, address),
                policy=topic.overflow or self.default_overflow,
                template=topic.address,
            )
            if last_event_id:
                try:
                    await self._resume(queue, address, channel, last_event_id)
                except BaseException:
                    await asyncio.shield(self.fanout.leave(queue, address))
                    raise
        finally:
            if last_event_id:
                queue.release()
        return topic

    async def _resume(
        self, queue: ClientQueue, address: str, channel: str, last_event_id: str
    ) -> None:
        stream = self.fanout.streams.get(address)
        # What the live stream had delivered before the history is read: anything later that
        # the history holds may come live as well, and must not reach the client twice.
        delivered = stream.last_event_id if stream is not None else None
        found, reaches_back = await self._history(address, channel, last_event_id)
        missed, certain = events_after(found, last_event_id)
        notice = None
        self.resumes += 1
        if not (certain or reaches_back):
            self.resume_gaps += 1
            detail = "history does not reach back to this event; some events may be missing"
            logger.info("Resume of %s after %s is incomplete", address, last_event_id)
            notice = gap_notice(address, last_event_id, detail)
        covered = frozenset(encoded.event.id for encoded in events_since(found, delivered))
        queue.replay(missed, notice, topic=address, covered=covered)

    async def _history(
        self, address: str, channel: str, last_event_id: str
    ) -> tuple[list[EncodedEvent], bool]:
        """The recent events of ``address``, oldest first, from the broker if it keeps them,
        and whether the broker vouches that they reach back to ``last_event_id``."""
        since = uuid7_millis(last_event_id)
        backend = self.broker.backend
        stream = self.fanout.streams.get(address)
        if since is not None and isinstance(backend, HistoryBackend) and stream is not None:
            messages, reaches_back = await self._read_history(backend, channel, since)
            prepared = [await stream.prepare(message) for message in messages]
            return [encoded for encoded in prepared if encoded is not None], reaches_back
        return list(self.fanout.replay.recent(address)), False

    async def _read_history(
        self, backend: HistoryBackend, channel: str, since: int
    ) -> tuple[list[BrokerMessage], bool]:
        """The broker's history, or :class:`Unavailable` while the broker cannot be read.

        A resume must not go ahead without the history it asked for (that would skip events
        without a ``gap``), nor fail as a server error: the client is told to retry shortly.
        """
        retry = {"Retry-After": "1"}
        if not self.broker.connected:
            raise Unavailable(
                "The broker that keeps this topic's history is unreachable, so the stream "
                "cannot be resumed right now; retry shortly.",
                headers=retry,
            )
        try:
            with anyio.fail_after(self.publish_timeout):
                return await backend.history(channel, since)
        except Exception as exc:
            logger.warning(
                "Could not read the history of channel %r: %s", channel, type(exc).__name__
            )
            raise Unavailable(
                "The broker could not read this topic's history, so the stream cannot be "
                "resumed right now; retry shortly.",
                headers=retry,
            ) from None

    async def unsubscribe(self, queue: ClientQueue, address: str) -> None:
        await self.fanout.leave(queue, address)

    async def disconnect(self, queue: ClientQueue, addresses: Sequence[str]) -> None:
        await self.fanout.leave_all(queue, addresses)

    def _preparer(
        self, topic: Topic, operation: Operation, params: dict[str, Any], address: str
    ) -> Prepare:
        """The once-per-event work of a topic stream: decode, validate, handle, encode."""
        channel = topic.channel_for(params)
        plan = operation.plan
        adapter = operation.payload_adapter
        template = topic.address

        async def prepare(message: BrokerMessage) -> EncodedEvent | None:
            event = decode_message(message.message, topic=address, channel=channel)
            try:
                value = adapter.validate_python(event.data)
            except ValidationError as exc:
                self.invalid[template] += 1
                logger.warning(
                    "Dropped an event on %s that does not match the topic's payload: %s",
                    address,
                    exc.errors(include_url=False),
                )
                return None
            if plan is not None:
                value = await call_handler(
                    plan,
                    event=value,
                    params=params,
                    context=(),
                    overrides=self.dependency_overrides,
                )
                if value is None:
                    return None
            try:
                return EncodedEvent(event, dumps(value))
            except NonStandardNumber:
                logger.warning("Dropped an event on %s that holds NaN or Infinity", address)
                return None

        return prepare


def gap_notice(address: str, last_event_id: str, detail: str) -> Reply:
    """The ``gap`` signal a resuming client gets; each transport writes it its own way."""
    body = {"topic": address, "last_event_id": last_event_id, "detail": detail}
    return Reply(signal="gap", body=body)


def _validate(operation: Operation, *, json_data: str | bytes | None, data: Any) -> Any:
    adapter = operation.payload_adapter
    try:
        if json_data is not None:
            value = adapter.validate_json(json_data)
            check_standard(json_data)
            return value
        return adapter.validate_python(data)
    except NonStandardNumber as exc:
        raise InvalidPayload(exc.detail()) from None
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if json_data is not None and errors and errors[0]["type"] == "json_invalid":
            raise MalformedMessage(f"The body is not valid JSON: {errors[0]['msg']}") from None
        if json_data is not None:
            try:
                check_standard(json_data)  # a NaN that failed validation is refused as a NaN
            except NonStandardNumber as refused:
                raise InvalidPayload(refused.detail()) from None
        raise InvalidPayload(validation_detail(exc, ("body",))) from None
