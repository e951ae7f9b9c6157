"""How the parts of a streaming API are put together: in an app, and while it runs.

:class:`~fastapi_streaming.StreamingAPI` holds the configuration; this module does the
wiring from it. :func:`add_routes` gives a FastAPI app the transports', WebSub hub's,
AsyncAPI document's and metrics' routes, :func:`join_lifespan` runs the API during the app's
lifespan, and :func:`run_parts` starts the runtime and each part that uses it (limits,
metrics, the WebSub hub, derived topics, table topics' producers) in order, then stops them
in reverse. Everything comes in as the narrow object that uses it, never the API itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from .context import StreamingContext
from .processing.engines import DEFAULT_ENGINE, EngineContext, ProcessingEngine, derived_topics
from .runtime import StreamingRuntime
from .security.redaction import install_redaction
from .shortcut import StreamRoutesFirst, serve_streams_first
from .topics import OverflowPolicy, TopicRegistry

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from .analytics import Analytics, UsageRecorder
    from .asyncapi.info import AsyncAPISource
    from .cdc.producers import Producers
    from .console import Console, ConsoleSettings
    from .limits import Limiter, Limits
    from .metrics import MetricsExporter
    from .tracing import Tracing
    from .websub.hub import WebSubHub
    from .websub.settings import WebSubSettings


@dataclass(frozen=True)
class Running:
    """What :func:`run_parts` started: the runtime, and the engine of the derived topics."""

    runtime: StreamingRuntime
    processing: ProcessingEngine


@asynccontextmanager
async def run_parts(
    context: StreamingContext,
    *,
    broker_url: str,
    plugin_manager: pluggy.PluginManager | None,
    default_overflow: OverflowPolicy,
    heartbeat: float,
    dependency_overrides_provider: Any,
    limits: Limits | None,
    metrics: MetricsExporter | None,
    websub: WebSubHub | None,
    producers: Producers,
    processing_engine: str = DEFAULT_ENGINE,
    recorder: UsageRecorder | None = None,
    console: Console | None = None,
    tracing: bool | TracerProvider = False,
) -> AsyncIterator[Running]:
    """Connect to the broker and run every part for the duration of the block.

    The runtime starts first and the limiter, metrics and hub see it before any client can;
    table topics' producers start last, so what they capture finds everything running.
    """
    from .plugins import create_backend, create_engine

    topics = context.topics
    backend = create_backend(broker_url, plugin_manager)
    install_redaction()  # again: the backend's client library may have made its loggers now
    runtime = StreamingRuntime(
        topics,
        backend,
        broker_url=broker_url,
        default_overflow=default_overflow,
        heartbeat=heartbeat,
        dependency_overrides_provider=dependency_overrides_provider,
    )
    runtime.trace_with(tracer_for(tracing, broker_url))
    processing = create_engine(
        processing_engine,
        EngineContext(derived_topics(topics), topics, runtime, broker_url),
        plugin_manager,
    )
    await runtime.start()
    limiter = limiter_for(topics, limits)
    context.limits = limiter
    if limiter is not None:
        await limiter.start(runtime.fanout.events_sent)
    context.attach(runtime)
    if metrics is not None:
        metrics.start()
    if recorder is not None:
        # What the hub delivers counts to each subscription's principal, as connections do.
        if websub is not None:
            websub.track_usage()
        recorder.start(runtime, limiter, [websub.take_delivered] if websub is not None else [])
    try:
        if websub is not None:
            await websub.start(runtime)
        if console is not None:
            await console.start(runtime)
        await processing.start()
        if len(producers):
            runtime.health_sections["sources"] = producers.health
        # Raises what is misconfigured (a database not set up for capture) at startup.
        await producers.start(runtime.broker.publish)
        try:
            yield Running(runtime, processing)
        finally:
            await producers.stop()
    finally:
        await processing.stop()
        if console is not None:
            await console.stop()
        if websub is not None:
            await websub.stop()
        if metrics is not None:
            await metrics.stop()
        if recorder is not None:
            await recorder.stop()
        context.attach(None)
        await runtime.stop()
        if limiter is not None:
            await limiter.stop()


def limiter_for(topics: TopicRegistry, limits: Limits | None) -> Limiter | None:
    """What enforces plans: from ``limits=``, or in memory when only topics name plans."""
    declared = any(
        operation.limit is not None
        for topic in topics
        for operation in (topic.subscribe, topic.publish)
        if operation is not None
    )
    if limits is None and not declared:
        return None
    from .limits import Limiter

    return Limiter(limits)


def tracer_for(tracing: bool | TracerProvider, broker_url: str) -> Tracing | None:
    """The spans for ``tracing=``; OpenTelemetry is imported only when on (it needs the extra)."""
    if tracing is False or tracing is None:
        return None
    from .tracing import Tracing

    system = broker_url.partition("://")[0] or "unknown"
    return Tracing(None if tracing is True else tracing, system=system)


def websub_hub(context: StreamingContext, websub: WebSubSettings | bool | None) -> WebSubHub | None:
    """The WebSub hub for ``websub=``; imported only when enabled (it needs the extra)."""
    if websub is None or websub is False:
        return None
    from .websub.hub import WebSubHub
    from .websub.settings import WebSubSettings

    return WebSubHub(context, WebSubSettings() if websub is True else websub)


def metrics_exporter(
    context: StreamingContext, websub: WebSubHub | None, metrics_url: str | None
) -> MetricsExporter | None:
    """The Prometheus metrics for ``metrics_url=``; imported only when on (it needs the extra)."""
    if metrics_url is None:
        return None
    from .metrics import MetricsExporter

    return MetricsExporter(context, websub=websub)


def usage_recorder(analytics: Analytics | bool | None, broker_url: str) -> UsageRecorder | None:
    """Usage analytics for ``analytics=`` (on unless False or None)."""
    if analytics is None or analytics is False:
        return None
    from .analytics import Analytics, UsageRecorder

    return UsageRecorder(Analytics() if analytics is True else analytics, broker_url)


def console_for(
    context: StreamingContext,
    settings: ConsoleSettings | bool | None,
    recorder: UsageRecorder | None,
    websub: WebSubHub | None,
) -> Console | None:
    """The operations console for ``console=`` (on unless False or None)."""
    if settings is None or settings is False:
        return None
    from .console import Console, ConsoleSettings

    chosen = ConsoleSettings() if settings is True else settings
    return Console(context, chosen, recorder=recorder, websub=websub)


def requires_scopes(topics: TopicRegistry) -> bool:
    """Whether some topic requires scopes (which then needs an authorizer to be reachable)."""
    return any(
        operation.scopes
        for topic in topics
        for operation in (topic.subscribe, topic.publish)
        if operation is not None
    )


def add_routes(
    app: FastAPI,
    context: StreamingContext,
    source: AsyncAPISource,
    *,
    websub: WebSubHub | None,
    metrics: MetricsExporter | None,
    metrics_url: str | None,
    console: Console | None = None,
) -> list[BaseRoute]:
    """Add the transports', the hub's, the document's, the metrics' and the console's routes
    to ``app``; return the stream routes (SSE and WebSocket)."""
    from .asyncapi.routes import add_asyncapi_routes
    from .transports import build_router, stream_routes

    info = source.info
    streams = stream_routes(context)
    app.router.routes.extend(streams)
    docs_url = info.asyncapi_docs_url if info.asyncapi_url or info.asyncapi_yaml_url else None
    app.include_router(build_router(context, asyncapi_docs_url=docs_url))
    if websub is not None:
        from .websub.routes import build_router as build_websub_router

        app.include_router(build_websub_router(websub))
    add_asyncapi_routes(app, source)
    if metrics is not None and metrics_url is not None:
        from .metrics import metrics_endpoint

        app.add_route(metrics_url, metrics_endpoint(metrics), include_in_schema=False)
    if console is not None:
        from .console import build_routes as console_routes

        app.router.routes.extend(console_routes(console))
    return streams


def join_lifespan(
    app: FastAPI,
    running: Callable[[], AbstractAsyncContextManager[object]],
    *,
    streams: Sequence[BaseRoute],
) -> None:
    """Run ``running()`` around the app's own lifespan: started before the app's startup code
    (which may then emit), stopped after its shutdown code.

    At startup, when the app's middleware is all its own, the ``streams`` routes are served
    ahead of it: see :mod:`fastapi_streaming.shortcut`.
    """
    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        if isinstance(app, Starlette) and not isinstance(app.middleware_stack, StreamRoutesFirst):
            serve_streams_first(app, streams)
        async with running(), original(app) as state:
            yield state

    app.router.lifespan_context = lifespan
