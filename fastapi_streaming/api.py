"""``StreamingAPI``: the registry of topics, its decorators, and how it joins a FastAPI app."""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from os import PathLike
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_args, get_origin

import pluggy
from fastapi import FastAPI
from pydantic import TypeAdapter
from starlette.requests import HTTPConnection

from .dependencies import plan_handler
from .events import Event
from .runtime import StreamingRuntime
from .security.access import AccessControl
from .security.authorizer import Authorizer
from .security.redaction import install_redaction
from .topics import Mode, Operation, OverflowPolicy, Topic, TopicRegistry

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self

if TYPE_CHECKING:
    from .cdc.capture import Source
    from .cdc.producers import Producers
    from .websub.hub import WebSubHub
    from .websub.settings import WebSubSettings

Handler = TypeVar("Handler", bound=Callable[..., Any])

_NOT_GIVEN: Any = object()

logger = logging.getLogger("fastapi_streaming")


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
        authorizer: who clients are: an authorizer (``JWTAuthorizer``,
            ``FastAPIUsersAuthorizer``, a plugin's) or several, tried in order. Topics with
            scopes need one; see the security guide.
        require_auth: refuse clients without valid credentials everywhere, even on topics
            that require no scope.
        websub: enable the WebSub hub (webhooks): ``WebSubSettings(...)``, or True for the
            defaults (a SQLite file in the working directory). Needs the ``websub`` extra.

    The rest describe the API in its AsyncAPI document (see the AsyncAPI guide):

        terms_of_service, contact, license_info, tags, external_docs: the document's ``info``.
        public_url: where clients reach the app (``https://api.example.com``), for the
            document's servers; without it, the host of the request that asked for it.
        security_schemes: the security schemes to describe, instead of HTTP bearer and the
            ``access_token`` query parameter.
        asyncapi_version: the version served by default (``3.0.0``; ``3.1.0``, ``2.6.0``).
        asyncapi_url, asyncapi_yaml_url, asyncapi_docs_url: where the document and its docs
            page are served; ``None`` turns one off.
        asyncapi_js_url, asyncapi_css_url: load the docs page's bundle from elsewhere (a CDN)
            instead of from the copy this package ships and the app serves.
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
        authorizer: Authorizer | Sequence[Authorizer] | None = None,
        require_auth: bool = False,
        websub: WebSubSettings | bool | None = None,
        terms_of_service: str | None = None,
        contact: Mapping[str, Any] | None = None,
        license_info: Mapping[str, Any] | None = None,
        tags: Sequence[Mapping[str, Any]] | None = None,
        external_docs: Mapping[str, Any] | None = None,
        public_url: str | None = None,
        security_schemes: Mapping[str, Mapping[str, Any]] | None = None,
        asyncapi_version: str = "3.0.0",
        asyncapi_url: str | None = "/asyncapi.json",
        asyncapi_yaml_url: str | None = "/asyncapi.yaml",
        asyncapi_docs_url: str | None = "/asyncapi",
        asyncapi_js_url: str | None = None,
        asyncapi_css_url: str | None = None,
    ) -> None:
        from .asyncapi.document import DocumentCache
        from .asyncapi.versions import check_version

        self.title = title
        self.version = version
        self.description = description
        self.terms_of_service = terms_of_service
        self.contact = dict(contact) if contact else None
        self.license_info = dict(license_info) if license_info else None
        self.tags = [dict(tag) for tag in tags] if tags else None
        self.external_docs = dict(external_docs) if external_docs else None
        self.public_url = public_url.rstrip("/") if public_url else None
        self.security_schemes = (
            {name: dict(scheme) for name, scheme in security_schemes.items()}
            if security_schemes
            else None
        )
        self.asyncapi_version = check_version(asyncapi_version)
        self.asyncapi_url = asyncapi_url
        self.asyncapi_yaml_url = asyncapi_yaml_url
        self.asyncapi_docs_url = asyncapi_docs_url
        self.asyncapi_js_url = asyncapi_js_url
        self.asyncapi_css_url = asyncapi_css_url
        self.broker_url = broker
        self.prefix = prefix.rstrip("/")
        self.max_queue = max_queue
        self.overflow = OverflowPolicy(overflow)
        self.max_message_size = max_message_size
        self.heartbeat = heartbeat
        self.plugin_manager = plugin_manager
        if authorizer is None:
            authorizers: Sequence[Authorizer] = ()
        elif isinstance(authorizer, Sequence):
            authorizers = authorizer
        else:
            authorizers = (authorizer,)
        self.access = AccessControl(authorizers, require_auth=require_auth)
        self.topics = TopicRegistry()
        #: What feeds topics from outside (database changes); runs with the API.
        self.producers = _producers()
        self._runtime: StreamingRuntime | None = None
        self._asyncapi_cache: DocumentCache[dict[str, Any]] = DocumentCache()
        #: The WebSub hub (webhooks), when enabled with ``websub=WebSubSettings(...)`` or True.
        self.websub: WebSubHub | None = _websub_hub(self, websub)

    @classmethod
    def from_asyncapi(
        cls, document: str | PathLike[str] | Mapping[str, Any], **options: Any
    ) -> Self:
        """Create a streaming API whose topics come from an AsyncAPI 3.x or 2.x document.

        ``document`` is a path to a JSON or YAML file, or the parsed document. Each channel
        becomes a topic with the document's address, parameters, modes, scopes and message
        schemas (incoming events are validated against them); ``options`` are passed on to
        the constructor and win over what the document says. Attach handlers afterwards with
        the usual decorators.
        """
        from .asyncapi.importer import load_document, read_document

        api = read_document(load_document(document))
        streaming = cls(**{**api.options, **options})
        api.declare(streaming)
        return streaming

    def asyncapi(
        self, version: str | None = None, *, base_url: str | None = None
    ) -> dict[str, Any]:
        """This API's AsyncAPI document (``3.0.0`` unless ``version`` says otherwise).

        Built once per version and server URL, and again only when the topics change.
        """
        from .asyncapi.document import get_asyncapi

        version = version or self.asyncapi_version
        base_url = self.public_url or base_url
        return self._asyncapi_cache.get(
            self.topics.revision,
            (version, base_url),
            lambda: get_asyncapi(self, version=version, base_url=base_url),
        )

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

    def changes(
        self,
        address: str,
        *,
        source: Source,
        scopes: Iterable[str] = (),
        channel: str | None = None,
        payload: Any = _NOT_GIVEN,
        name: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        exclude: Sequence[str] = (),
        mask: Sequence[str] = (),
    ) -> Callable[[Handler], Handler]:
        """Declare a subscribe topic that carries a database table's committed changes.

        ``source`` (such as ``PostgresChanges(dsn, table="public.orders")``) is captured once
        per deployment; the decorated function runs once per change with the ``Change`` and
        the address parameters (taken from the row's columns) and returns what clients get
        (``None`` drops it). ``exclude`` and ``mask`` name columns that never leave the
        process, or leave it masked. See the change data capture guide.
        """
        from .cdc.declare import declare_changes

        def decorator(handler: Handler) -> Handler:
            declare_changes(
                self.add_operation,
                self.producers,
                self.topics.touch,
                address,
                handler,
                source=source,
                scopes=scopes,
                channel=channel,
                name=name,
                summary=summary,
                description=description,
                exclude=exclude,
                mask=mask,
                **({} if payload is _NOT_GIVEN else {"payload": payload}),
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
        existing = topic.operation(mode)
        if existing is not None and existing.plan is None and handler is not None:
            # Declared without a handler (from an AsyncAPI document): the handler joins it.
            _attach_handler(topic, existing, handler, scopes, summary, description)
            if overflow is not None:
                topic.overflow = OverflowPolicy(overflow)
            if max_queue is not None:
                topic.max_queue = max_queue
            self.topics.touch()
            return topic
        if existing is not None:
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
            payload=event_type,
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
            self.topics,
            backend,
            broker_url=self.broker_url,
            default_overflow=self.overflow,
            heartbeat=self.heartbeat,
        )
        await runtime.start()
        self._runtime = runtime
        try:
            if self.websub is not None:
                await self.websub.start(runtime)
            if len(self.producers):
                runtime.health_sections["sources"] = self.producers.health
            # Raises what is misconfigured (a database not set up for capture) at startup.
            await self.producers.start(runtime.broker.publish)
            try:
                yield runtime
            finally:
                await self.producers.stop()
        finally:
            if self.websub is not None:
                await self.websub.stop()
            self._runtime = None
            await runtime.stop()

    async def authorize(
        self, connection: HTTPConnection, accesses: Sequence[tuple[Topic, Mode]]
    ) -> list[object]:
        """Decide whether ``connection`` may use every (topic, mode) in ``accesses``.

        Returns objects handlers may ask for by annotation (such as the client's principal), or
        raises :class:`~fastapi_streaming.errors.Unauthorized` or
        :class:`~fastapi_streaming.errors.Forbidden`. A topic mode without scopes is open
        (unless ``require_auth``); one with scopes needs a principal holding all of them.
        """
        principal = await self.access.check(connection, accesses)
        return [principal] if principal is not None else []

    async def emit(self, address: str, payload: Any) -> Event:
        """Publish an event from server-side code (a feed, a background task, a REST route)."""
        return await self.runtime.emit(address, payload)

    def init_app(self, app: FastAPI) -> None:
        """Add this API's routes to ``app`` and run it during the app's lifespan.

        An app that has a lifespan of its own keeps it: the streaming API starts before it (so
        the app's startup code can already emit) and stops after it.
        """
        from .asyncapi.routes import add_asyncapi_routes
        from .transports import build_router, stream_routes

        # Browsers send tokens in the URL (?access_token=); servers log URLs.
        install_redaction()
        if not self.access.authorizers and any(
            operation.scopes
            for topic in self.topics
            for operation in (topic.subscribe, topic.publish)
            if operation is not None
        ):
            logger.warning(
                "Topics of %r require scopes but the streaming API has no authorizer: every "
                "client is refused on them. Pass authorizer=... to StreamingAPI.",
                self.title,
            )
        app.router.routes.extend(stream_routes(self))
        app.include_router(build_router(self))
        if self.websub is not None:
            from .websub.routes import build_router as build_websub_router

            app.include_router(build_websub_router(self.websub))
        add_asyncapi_routes(app, self)
        original = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[Any]:
            async with self.running(), original(app) as state:
                yield state

        app.router.lifespan_context = lifespan
        app.state.fastapi_streaming = self


def _producers() -> Producers:
    from .cdc.producers import Producers

    return Producers()


def _websub_hub(streaming: StreamingAPI, websub: WebSubSettings | bool | None) -> WebSubHub | None:
    """The WebSub hub for ``websub=``; imported only when enabled (it needs the extra)."""
    if websub is None or websub is False:
        return None
    from .websub.hub import WebSubHub
    from .websub.settings import WebSubSettings

    return WebSubHub(streaming, WebSubSettings() if websub is True else websub)


def _attach_handler(
    topic: Topic,
    operation: Operation,
    handler: Callable[..., Any],
    scopes: Iterable[str],
    summary: str | None,
    description: str | None,
) -> None:
    """Give a declared operation its handler; the declared payload and scopes still apply.

    A declared payload such as ``Annotated[Any, JsonSchemaPayload(...)]`` is narrowed to the
    handler's event type (``Annotated[Quote, JsonSchemaPayload(...)]``), so an event is checked
    against the document's schema and then converted to what the handler asks for.
    """
    plan = plan_handler(
        handler,
        path_params=topic.parameters,
        allow_context=operation.mode is Mode.PUBLISH,
        where=f"{operation.mode.value} handler {getattr(handler, '__qualname__', handler)!r}",
    )
    payload = operation.payload
    wanted = plan.event_type if plan.event_param is not None else Any
    if wanted is not Any and get_origin(payload) is Annotated and get_args(payload)[0] is Any:
        payload = Annotated.__class_getitem__((wanted, *payload.__metadata__))
        operation.payload_adapter = TypeAdapter(payload)
    elif wanted is not Any and payload is Any:
        payload = wanted
        operation.payload_adapter = TypeAdapter(payload)
    operation.payload = payload
    operation.plan = plan
    operation.scopes = tuple(dict.fromkeys([*operation.scopes, *scopes]))
    operation.summary = summary or operation.summary
    operation.description = description or operation.description or inspect.getdoc(handler)
    topic.description = topic.description or operation.description


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
