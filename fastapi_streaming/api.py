"""``StreamingAPI``: the configuration of a streaming API, and how it joins and runs in an app.

Topics are declared on a :class:`~fastapi_streaming.routing.StreamingRouter`; the API has one of
its own (``@streaming.subscribe``) and includes others (``streaming.include_router``). What
the transports, the WebSub hub and the AsyncAPI document get from it are narrow objects: a
:class:`~fastapi_streaming.context.StreamingContext` and an
:class:`~fastapi_streaming.asyncapi.info.AsyncAPISource`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from os import PathLike
from typing import TYPE_CHECKING, Any

import pluggy
from fastapi import FastAPI
from fastapi import params as fastapi_params
from starlette.requests import HTTPConnection

from .asyncapi.document import cached_document
from .asyncapi.info import ApiInfo, AsyncAPISource
from .asyncapi.versions import check_version
from .context import NotRunningError, StreamingContext
from .declarations import NOT_GIVEN
from .delegation import Setting, on_router
from .events import Event
from .processing.engines import DEFAULT_ENGINE, ProcessingEngine
from .routing import StreamingRouter
from .runtime import StreamingRuntime
from .security.access import AccessControl
from .security.authorizer import Authenticator
from .security.redaction import install_redaction
from .topics import Mode, OverflowPolicy, Topic, TopicRegistry
from .uvicorn_support import end_streams_on_shutdown
from .wiring import (
    add_routes,
    console_for,
    join_lifespan,
    metrics_exporter,
    requires_scopes,
    run_parts,
    usage_recorder,
    websub_hub,
)

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self

if TYPE_CHECKING:
    from datetime import datetime

    from opentelemetry.trace import TracerProvider

    from .analytics import Analytics, UsageRecord, UsageRecorder
    from .asyncapi.declared import AsyncAPIImportWarning
    from .cdc.producers import Producers
    from .console import Console, ConsoleSettings
    from .limits import Limits
    from .websub.hub import WebSubHub
    from .websub.settings import WebSubSettings


logger = logging.getLogger("fastapi_streaming")

__all__ = ["NotRunningError", "StreamingAPI"]


class StreamingAPI:
    """A Streaming API: topics that clients subscribe and publish to over the web.

    Declare topics with :meth:`subscribe` and :meth:`publish`, or on a
    :class:`~fastapi_streaming.StreamingRouter` added with :meth:`include_router`; then call
    :meth:`init_app` to add the WebSocket, SSE and HTTP routes to a FastAPI app and to connect
    to the broker during the app's lifespan.

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
        authorizer: who clients are: an authenticator (``JWTAuthorizer``,
            ``FastAPIUsersAuthorizer``, a plugin's) or several, tried in order. Topics with
            scopes need one; see the security guide.
        require_auth: refuse clients without valid credentials everywhere, even on topics
            that require no scope.
        dependencies: ``Depends(...)`` run before every handler of the API (as FastAPI's).
        websub: enable the WebSub hub (webhooks): ``WebSubSettings(...)``, or True for the
            defaults (a SQLite file in the working directory). Needs the ``websub`` extra.
        limits: plans and where their counters live: ``Limits(plan=..., storage=...)``.
            Needs the ``limits`` extra; see the plans and limits guide.
        metrics_url: serve Prometheus metrics there (``"/metrics"``); None (the default)
            serves none. Needs the ``metrics`` extra; see the observability guide.
        processing_engine: what computes derived topics: ``"embedded"`` (the default, in
            the API's processes) or an engine plugin's name (``"quix"``); see the stream
            processing guide.
        tracing: OpenTelemetry spans of every publish and of every process's fan-out, with
            the trace context carried through the broker in each event: True sends them to
            the global tracer provider, or pass a ``TracerProvider``. Needs the ``otel``
            extra; see the observability guide.
        analytics: usage analytics per principal, plan and topic (:meth:`usage`): on by
            default, in memory or the broker's Redis; ``Analytics(...)`` to tune, False for
            none. See the console guide.
        console: the operations console at ``{prefix}/console``, for principals holding the
            ``streams:admin`` scope: on by default; ``ConsoleSettings(...)`` to tune, False
            for none.

    The rest describe the API in its AsyncAPI document (see the AsyncAPI guide):

        terms_of_service, contact, license_info, tags, external_docs: the document's ``info``.
        public_url: where clients reach the app (``https://api.example.com``), for the
            document's servers; without it, the host of the request that asked for it.
        security_schemes: the security schemes to describe, instead of HTTP bearer and the
            ``access_token`` query parameter.
        server_security: the security requirements of every server, ``{scheme: [scopes]}``
            (what a document's servers ask for); needs ``require_auth=True``.
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
        authorizer: Authenticator | Sequence[Authenticator] | None = None,
        require_auth: bool = False,
        dependencies: Sequence[fastapi_params.Depends] | None = None,
        websub: WebSubSettings | bool | None = None,
        limits: Limits | None = None,
        metrics_url: str | None = None,
        processing_engine: str = DEFAULT_ENGINE,
        tracing: bool | TracerProvider = False,
        analytics: Analytics | bool = True,
        console: ConsoleSettings | bool = True,
        terms_of_service: str | None = None,
        contact: Mapping[str, Any] | None = None,
        license_info: Mapping[str, Any] | None = None,
        tags: Sequence[Mapping[str, Any]] | None = None,
        external_docs: Mapping[str, Any] | None = None,
        public_url: str | None = None,
        security_schemes: Mapping[str, Mapping[str, Any]] | None = None,
        server_security: Mapping[str, Sequence[str]] | None = None,
        asyncapi_version: str = "3.0.0",
        asyncapi_url: str | None = "/asyncapi.json",
        asyncapi_yaml_url: str | None = "/asyncapi.yaml",
        asyncapi_docs_url: str | None = "/asyncapi",
        asyncapi_js_url: str | None = None,
        asyncapi_css_url: str | None = None,
    ) -> None:
        if server_security and not require_auth:
            raise ValueError(
                "server_security says every client must authenticate: pass require_auth=True "
                "(or, to drop what an AsyncAPI document's servers ask for, server_security=None "
                "as well as require_auth=False)."
            )
        if authorizer is None:
            authenticators: Sequence[Authenticator] = ()
        elif isinstance(authorizer, Sequence):
            authenticators = authorizer
        else:
            authenticators = (authorizer,)
        self.topics = TopicRegistry()
        #: The API's own router: ``@streaming.subscribe`` declares on it.
        self.router = StreamingRouter(dependencies=dependencies, topics=self.topics)
        #: What the transports and the WebSub hub use: topics, access control, limits, runtime.
        self.context = StreamingContext(
            topics=self.topics,
            access=AccessControl(authenticators, require_auth=require_auth),
            prefix=prefix.rstrip("/"),
            max_queue=max_queue,
            max_message_size=max_message_size,
            public_url=public_url.rstrip("/") if public_url else None,
        )
        #: The document's words and where it is served.
        self.info = ApiInfo(
            title=title,
            version=version,
            description=description,
            terms_of_service=terms_of_service,
            contact=dict(contact) if contact else None,
            license_info=dict(license_info) if license_info else None,
            tags=[dict(tag) for tag in tags] if tags else None,
            external_docs=dict(external_docs) if external_docs else None,
            public_url=public_url.rstrip("/") if public_url else None,
            security_schemes=(
                {name: dict(scheme) for name, scheme in security_schemes.items()}
                if security_schemes
                else None
            ),
            server_security=(
                {name: list(scopes) for name, scopes in server_security.items()}
                if server_security
                else None
            ),
            asyncapi_version=check_version(asyncapi_version),
            asyncapi_url=asyncapi_url,
            asyncapi_yaml_url=asyncapi_yaml_url,
            asyncapi_docs_url=asyncapi_docs_url,
            asyncapi_js_url=asyncapi_js_url,
            asyncapi_css_url=asyncapi_css_url,
        )
        #: What ``from_asyncapi`` could not keep of its document (empty otherwise).
        self.import_warnings: list[AsyncAPIImportWarning] = []
        self.broker_url = broker
        #: How plans are enforced (None: only if a topic declares a plan, then in memory).
        self.limits = limits
        self.metrics_url = metrics_url
        #: OpenTelemetry traces: False, True (the global tracer provider) or a provider.
        self.tracing = tracing
        self.overflow = OverflowPolicy(overflow)
        self.heartbeat = heartbeat
        self.plugin_manager = plugin_manager
        #: The app whose ``dependency_overrides`` apply to handlers (set by ``init_app``).
        self.dependency_overrides_provider: Any = None
        #: The WebSub hub (webhooks), when enabled with ``websub=WebSubSettings(...)`` or True.
        self.websub: WebSubHub | None = websub_hub(self.context, websub)
        #: Which engine computes derived topics (``"embedded"`` or a plugin's).
        self.processing_engine = processing_engine
        #: The engine computing the derived topics, while the API runs.
        self.processing: ProcessingEngine | None = None
        #: The Prometheus metrics, when ``metrics_url`` is set.
        self.metrics = metrics_exporter(self.context, self.websub, metrics_url)
        #: Usage analytics (None with ``analytics=False``).
        self.analytics: UsageRecorder | None = usage_recorder(analytics, broker)
        #: The operations console (None with ``console=False``).
        self.console: Console | None = console_for(
            self.context, console, self.analytics, self.websub
        )
        #: What the AsyncAPI document is built from (and its cache).
        self.asyncapi_source = AsyncAPISource(
            self.info,
            self.topics,
            self.context.access,
            prefix=self.context.prefix,
            websub=self.websub is not None,
        )

    title = Setting[str]("info")
    version = Setting[str]("info")
    description = Setting["str | None"]("info")
    terms_of_service = Setting["str | None"]("info")
    contact = Setting["dict[str, Any] | None"]("info")
    license_info = Setting["dict[str, Any] | None"]("info")
    tags = Setting["list[dict[str, Any]] | None"]("info")
    external_docs = Setting["dict[str, Any] | None"]("info")
    public_url = Setting["str | None"]("info", "context")
    security_schemes = Setting["dict[str, dict[str, Any]] | None"]("info")
    server_security = Setting["dict[str, list[str]] | None"]("info")
    asyncapi_version = Setting[str]("info")
    asyncapi_url = Setting["str | None"]("info")
    asyncapi_yaml_url = Setting["str | None"]("info")
    asyncapi_docs_url = Setting["str | None"]("info")
    asyncapi_js_url = Setting["str | None"]("info")
    asyncapi_css_url = Setting["str | None"]("info")
    prefix = Setting[str]("context", "asyncapi_source")
    max_queue = Setting[int]("context")
    max_message_size = Setting[int]("context")

    #: Who clients are and what they may touch, for every transport and the document.
    access = Setting[AccessControl]("context", "asyncapi_source")

    @classmethod
    def from_asyncapi(
        cls,
        document: str | PathLike[str] | Mapping[str, Any],
        *,
        resolver: Callable[[str], Any] | None = None,
        **options: Any,
    ) -> Self:
        """Create a streaming API whose topics come from an AsyncAPI 3.x or 2.x document.

        ``document`` is a path to a JSON or YAML file, or the parsed document. Each channel
        becomes a topic with the document's address, parameters, modes, scopes and message
        schemas (incoming events are validated against them); ``options`` are passed on to
        the constructor and win over what the document says. Attach handlers afterwards with
        the usual decorators.

        References to other files are resolved against the document's location; remote ones
        (``https://...``) only through ``resolver``, a function of the URL that returns the
        parsed document. What the API does not keep of the document is listed in
        ``import_warnings`` (and logged). Servers that ask for security make every client
        authenticate (``require_auth=True``): pass ``authorizer=...``.
        """
        from .asyncapi.importer import declare, load_document, read_document

        api = read_document(load_document(document, resolver))
        streaming = cls(**{**api.options, **options})
        declare(api, streaming)
        streaming.import_warnings = list(api.warnings)
        return streaming

    def asyncapi(
        self, version: str | None = None, *, base_url: str | None = None
    ) -> dict[str, Any]:
        """This API's AsyncAPI document (``3.0.0`` unless ``version`` says otherwise).

        Built once per version and server URL, and again only when the topics change.
        """
        return cached_document(self.asyncapi_source, version, base_url=base_url)

    # -- declaring topics (delegated to the API's own router) -------------------------------

    # The declaring methods are the router's own (see ``on_router``): one signature to keep,
    # still typed for editors and mypy, where FastAPI repeats each signature by hand.
    subscribe = on_router(StreamingRouter.subscribe)
    publish = on_router(StreamingRouter.publish)  #: ``reply=`` makes it request/reply.
    derive = on_router(StreamingRouter.derive)  #: A topic computed from others.
    changes = on_router(StreamingRouter.changes)  #: A table topic: a table's committed changes.

    @property
    def producers(self) -> Producers:
        """What feeds topics from outside (database changes); runs with the API."""
        return self.router.producers

    # Written out, unlike the decorators: the API's always returns the topic (its router has
    # a registry) and takes no ``derivation`` (``derive`` makes those).
    def add_operation(
        self,
        mode: Mode,
        address: str,
        handler: Callable[..., Any] | None,
        *,
        scopes: Iterable[str] = (),
        channel: str | None = None,
        payload: Any = NOT_GIVEN,
        name: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        overflow: OverflowPolicy | str | None = None,
        max_queue: int | None = None,
        tags: Sequence[str] | None = None,
        dependencies: Sequence[fastapi_params.Depends] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        plan: Any = None,
        reply: Any = None,
        reply_address: str | None = None,
    ) -> Topic:
        """Add one mode to a topic, creating the topic on first use (what the decorators call)."""
        topic = self.router.add_operation(
            mode,
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
            tags=tags,
            dependencies=dependencies,
            deprecated=deprecated,
            include_in_schema=include_in_schema,
            plan=plan,
            reply=reply,
            reply_address=reply_address,
        )
        assert topic is not None  # the API's router declares into the API's registry
        return topic

    #: Add a router's topics, with its prefix, tags, dependencies and scopes (as FastAPI's).
    include_router = on_router(StreamingRouter.include_router)

    # -- running ----------------------------------------------------------------------------

    @property
    def runtime(self) -> StreamingRuntime:
        """The running parts; only between the app's startup and shutdown."""
        return self.context.runtime

    @property
    def is_running(self) -> bool:
        return self.context.is_running

    @asynccontextmanager
    async def running(self) -> AsyncIterator[StreamingRuntime]:
        """Connect to the broker for the duration of the block (the app lifespan uses this)."""
        async with run_parts(
            self.context,
            broker_url=self.broker_url,
            plugin_manager=self.plugin_manager,
            default_overflow=self.overflow,
            heartbeat=self.heartbeat,
            dependency_overrides_provider=self.dependency_overrides_provider,
            limits=self.limits,
            metrics=self.metrics,
            tracing=self.tracing,
            websub=self.websub,
            producers=self.router.producers,
            processing_engine=self.processing_engine,
            recorder=self.analytics,
            console=self.console,
        ) as parts:
            self.processing = parts.processing
            try:
                yield parts.runtime
            finally:
                self.processing = None

    async def authorize(
        self, connection: HTTPConnection, accesses: Sequence[tuple[Topic, Mode]]
    ) -> list[object]:
        """Decide whether ``connection`` may use every (topic, mode) in ``accesses``; see
        :meth:`fastapi_streaming.context.StreamingContext.authorize`.
        """
        return await self.context.authorize(connection, accesses)

    async def usage(
        self,
        *,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        principal: str | None = None,
        plan: str | None = None,
        topic: str | None = None,
    ) -> list[UsageRecord]:
        """Events delivered, published and throttled per minute, principal, plan and topic
        (address template), over every worker that shares the analytics storage; see
        :meth:`fastapi_streaming.analytics.UsageRecorder.query`."""
        if self.analytics is None:
            raise RuntimeError("Usage analytics are off: drop analytics=False.")
        return await self.analytics.query(
            since=since, until=until, principal=principal, plan=plan, topic=topic
        )

    async def emit(self, address: str, payload: Any) -> Event:
        """Publish an event from server-side code (a feed, a background task, a REST route)."""
        return await self.runtime.emit(address, payload)

    def init_app(self, app: FastAPI) -> None:
        """Add this API's routes to ``app`` and run it during the app's lifespan.

        An app that has a lifespan of its own keeps it: the streaming API starts before it (so
        the app's startup code can already emit) and stops after it.
        """
        # Browsers send tokens in the URL (?access_token=); servers log URLs.
        install_redaction()
        end_streams_on_shutdown()  # under plain uvicorn too
        if not self.access.authorizers and requires_scopes(self.topics):
            logger.warning(
                "Topics of %r require scopes but the streaming API has no authorizer: every "
                "client is refused on them. Pass authorizer=... to StreamingAPI.",
                self.title,
            )
        streams = add_routes(
            app,
            self.context,
            self.asyncapi_source,
            websub=self.websub,
            metrics=self.metrics,
            metrics_url=self.metrics_url,
            console=self.console,
        )
        join_lifespan(app, self.running, streams=streams)
        app.state.fastapi_streaming = self
        self.dependency_overrides_provider = app
