"""``StreamingAPI``: the registry of topics, its decorators, and how it joins a FastAPI app."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pluggy
from fastapi import FastAPI
from pydantic import TypeAdapter
from starlette.requests import HTTPConnection

from .dependencies import plan_handler
from .events import Event
from .runtime import StreamingRuntime
from .topics import Mode, Operation, OverflowPolicy, Topic, TopicRegistry

Handler = TypeVar("Handler", bound=Callable[..., Any])

_NOT_GIVEN: Any = object()


class NotRunningError(RuntimeError):
    """The streaming API was used outside the app's lifespan."""


class StreamingAPI:
    """A Streaming API: topics that clients subscribe and publish to over the web.

    Declare topics with :meth:`subscribe` and :meth:`publish`, then call :meth:`init_app` to add
    the WebSocket, SSE and HTTP routes to a FastAPI app and to connect to the broker during the
    app's lifespan.

    Args:
        title, version, description: what the API's documentation shows.
        broker: the broker URL; its scheme picks the backend (``memory://``, ``redis://``...).
        prefix: where the transports' routes live (``/streams/sse/...``, ``/streams/ws``...).
        max_queue: events a client may have waiting before its overflow policy applies.
        overflow: what happens to a client whose queue is full (per topic on ``subscribe``).
        max_message_size: the largest event a client may send, in bytes (413 / close 1009).
        heartbeat: seconds between comment lines on idle SSE streams.
        plugin_manager: a pluggy manager to find backends with (default: one with every
            installed plugin).
    """

    def __init__(
        self,
        *,
        title: str = "Streaming API",
        version: str = "0.1.0",
        description: str | None = None,
        broker: str = "memory://",
        prefix: str = "/streams",
        max_queue: int = 1000,
        overflow: OverflowPolicy | str = OverflowPolicy.DISCONNECT,
        max_message_size: int = 1024 * 1024,
        heartbeat: float = 15.0,
        plugin_manager: pluggy.PluginManager | None = None,
    ) -> None:
        self.title = title
        self.version = version
        self.description = description
        self.broker_url = broker
        self.prefix = prefix.rstrip("/")
        self.max_queue = max_queue
        self.overflow = OverflowPolicy(overflow)
        self.max_message_size = max_message_size
        self.heartbeat = heartbeat
        self.plugin_manager = plugin_manager
        self.topics = TopicRegistry()
        self._runtime: StreamingRuntime | None = None

    # -- declaring topics -------------------------------------------------------------------

    def subscribe(
        self,
        address: str,
        *,
        scopes: Iterable[str] = (),
        channel: str | None = None,
        payload: Any = _NOT_GIVEN,
        name: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        overflow: OverflowPolicy | str | None = None,
        max_queue: int | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare that clients may receive the events of ``address``.

        The decorated function runs once per event (not once per client) with the validated
        event and the address parameters; what it returns is sent to every subscribed client,
        and ``None`` drops the event.
        """

        def decorator(handler: Handler) -> Handler:
            self.add_operation(
                Mode.SUBSCRIBE,
                address,
                handler,
                scopes=scopes,
                channel=channel,
                payload=payload,
                name=name,
                summary=summary,
                description=description,
                overflow=overflow,
                max_queue=max_queue,
            )
            return handler

        return decorator

    def publish(
        self,
        address: str,
        *,
        scopes: Iterable[str] = (),
        channel: str | None = None,
        payload: Any = _NOT_GIVEN,
        name: str | None = None,
        summary: str | None = None,
        description: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare that clients may send events into ``address``.

        The decorated function runs for each event a client sends, after validation, with its
        dependencies resolved; what it returns goes to the broker, and ``None`` drops the event.
        """

        def decorator(handler: Handler) -> Handler:
            self.add_operation(
                Mode.PUBLISH,
                address,
                handler,
                scopes=scopes,
                channel=channel,
                payload=payload,
                name=name,
                summary=summary,
                description=description,
            )
            return handler

        return decorator

    def add_operation(
        self,
        mode: Mode,
        address: str,
        handler: Callable[..., Any] | None,
        *,
        scopes: Iterable[str] = (),
        channel: str | None = None,
        payload: Any = _NOT_GIVEN,
        name: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        overflow: OverflowPolicy | str | None = None,
        max_queue: int | None = None,
    ) -> Topic:
        """Add one mode to a topic, creating the topic on first use (what the decorators call)."""
        topic = self.topics.get(address)
        if topic is None:
            topic = Topic(address, channel=channel, name=name)
            self.topics.add(topic)
        elif channel is not None and not topic.channel_is_explicit:
            topic.set_channel(channel)
        elif channel is not None and channel != topic.channel:
            raise ValueError(
                f"Topic {address!r} is already mapped to channel {topic.channel!r}, "
                f"not {channel!r}; give the channel once, or the same one on both modes."
            )
        if topic.operation(mode) is not None:
            raise ValueError(f"Topic {address!r} already has a {mode.value} operation.")
        plan = None
        if handler is not None:
            plan = plan_handler(
                handler,
                path_params=topic.parameters,
                allow_context=mode is Mode.PUBLISH,
                where=f"{mode.value} handler {getattr(handler, '__qualname__', handler)!r}",
            )
        event_type = payload
        if event_type is _NOT_GIVEN:
            has_event = plan is not None and plan.event_param is not None
            event_type = plan.event_type if plan is not None and has_event else topic.payload
        _learn_payload(topic, mode, event_type, plan.return_type if plan else Any)
        operation = Operation(
            mode=mode,
            plan=plan,
            payload_adapter=(
                topic.payload_adapter if event_type == topic.payload else TypeAdapter(event_type)
            ),
            scopes=tuple(scopes),
            summary=summary,
            description=description or (inspect.getdoc(handler) if handler else None),
        )
        if mode is Mode.SUBSCRIBE:
            topic.subscribe = operation
            if overflow is not None:
                topic.overflow = OverflowPolicy(overflow)
            if max_queue is not None:
                topic.max_queue = max_queue
        else:
            topic.publish = operation
        if name is not None:
            topic.name = name
        topic.description = topic.description or operation.description
        self.topics.touch()
        return topic

    # -- running ----------------------------------------------------------------------------

    @property
    def runtime(self) -> StreamingRuntime:
        """The running parts; only between the app's startup and shutdown."""
        if self._runtime is None:
            raise NotRunningError(
                "The streaming API is not running. It runs during the lifespan of the app "
                "it was added to with init_app(app), or inside `async with streaming.running()`."
            )
        return self._runtime

    @property
    def is_running(self) -> bool:
        return self._runtime is not None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[StreamingRuntime]:
        """Connect to the broker for the duration of the block (the app lifespan uses this)."""
        from .brokers.plugins import create_backend

        backend = create_backend(self.broker_url, self.plugin_manager)
        runtime = StreamingRuntime(
            self.topics, backend, broker_url=self.broker_url, default_overflow=self.overflow
        )
        await runtime.start()
        self._runtime = runtime
        try:
            yield runtime
        finally:
            self._runtime = None
            await runtime.stop()

    async def authorize(
        self, connection: HTTPConnection, accesses: Sequence[tuple[Topic, Mode]]
    ) -> list[object]:
        """Decide whether ``connection`` may use every (topic, mode) in ``accesses``.

        Returns objects handlers may ask for by annotation (such as the client's principal), or
        raises :class:`~fastapi_streaming.errors.Unauthorized` or
        :class:`~fastapi_streaming.errors.Forbidden`. Without an authorizer every topic is open.
        """
        return []

    async def emit(self, address: str, payload: Any) -> Event:
        """Publish an event from server-side code (a feed, a background task, a REST route)."""
        return await self.runtime.emit(address, payload)

    def init_app(self, app: FastAPI) -> None:
        """Add this API's routes to ``app`` and run it during the app's lifespan.

        An app that has a lifespan of its own keeps it: the streaming API starts before it (so
        the app's startup code can already emit) and stops after it.
        """
        from .transports import build_router

        app.include_router(build_router(self))
        original = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[Any]:
            async with self.running(), original(app) as state:
                yield state

        app.router.lifespan_context = lifespan
        app.state.fastapi_streaming = self


def _learn_payload(topic: Topic, mode: Mode, event_type: Any, return_type: Any) -> None:
    """Work out the type of the events on the topic's channel from what the handlers declare.

    A subscribe handler's event is what the channel carries; so is what a publish handler
    returns. The first definite type wins; ``Any`` says nothing.
    """
    if topic.payload is not Any:
        return
    if mode is Mode.SUBSCRIBE:
        candidate = event_type
    else:
        candidate = _without_none(return_type)
        if candidate is Any:
            candidate = event_type
    if candidate is not Any:
        topic.payload = candidate
        topic.payload_adapter = TypeAdapter(candidate)


def _without_none(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if args and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return rest[0] if len(rest) == 1 else Any
    return annotation
