"""OpenTelemetry traces of publishing and fanning out (``pip install
"fastapi-streaming[otel]"``); ``StreamingAPI(tracing=True)`` turns them on.

Two spans per event and process, never one per client:

- ``publish {template}`` (kind PRODUCER) around each publish, by a client over HTTP or a
  WebSocket or by server code (``emit``). Its W3C trace context goes into the event's
  CloudEvents envelope (``traceparent``, ``tracestate``: the CloudEvents distributed tracing
  extension), so it travels through the broker with the event.
- ``process {template}`` (kind CONSUMER) on every worker process that fans the event out to
  its clients: the subscribe handler, the encoding and the hand-over to every client's queue.
  It is a child of the producer's span, so one trace shows the publish and every worker's
  delivery, and it also carries a link to it, as OpenTelemetry's messaging conventions ask of
  consumers.

This module imports OpenTelemetry; nothing else in the package does, and it is imported only
when traces are on, so an API without them pays nothing (one ``is None`` test per event).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from broadcaster import Event as BrokerMessage

#: The instrumentation scope of every span.
SCOPE = "fastapi_streaming"

# Attributes of OpenTelemetry's semantic conventions for messaging.
SYSTEM = "messaging.system"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
DESTINATION = "messaging.destination.name"
DESTINATION_TEMPLATE = "messaging.destination.template"
MESSAGE_ID = "messaging.message.id"
# Attributes of this library.
TOPIC = "fastapi_streaming.topic"
VIA = "fastapi_streaming.via"
CLIENTS = "fastapi_streaming.clients"


@dataclass
class PublishTrace:
    """The span of one publish and the trace context the event carries."""

    span: Span
    traceparent: str | None
    tracestate: str | None

    def sent(self, event_id: str) -> None:
        self.span.set_attribute(MESSAGE_ID, event_id)


class Tracing:
    """Makes the publish and delivery spans of one streaming API.

    Args:
        tracer_provider: where spans go; None uses OpenTelemetry's global provider (what
            ``opentelemetry-instrument`` or the app's own setup installed).
        system: ``messaging.system`` of the spans: the broker URL's scheme (``redis``).
    """

    def __init__(self, tracer_provider: TracerProvider | None = None, *, system: str) -> None:
        self.tracer = trace.get_tracer(SCOPE, _version(), tracer_provider=tracer_provider)
        self.system = system
        self._propagator = TraceContextTextMapPropagator()

    @contextmanager
    def publish(
        self, *, template: str, address: str, channel: str, via: str
    ) -> Iterator[PublishTrace]:
        """The span of one publish, current for the block; the event carries its context."""
        attributes = {
            SYSTEM: self.system,
            OPERATION_TYPE: "send",
            OPERATION_NAME: "publish",
            DESTINATION: channel,
            DESTINATION_TEMPLATE: template,
            TOPIC: address,
            VIA: via,
        }
        with self.tracer.start_as_current_span(
            f"publish {template}", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier)
            yield PublishTrace(span, carrier.get("traceparent"), carrier.get("tracestate"))

    @contextmanager
    def delivery(
        self, *, template: str, address: str, channel: str, message: BrokerMessage
    ) -> Iterator[Span]:
        """The span of one event's fan-out in this process, current for the block: a child of
        the producer's span (when the envelope names one) with a link to it."""
        producer = self.producer_context(message.message)
        links = []
        if producer is not None:
            span_context = trace.get_current_span(producer).get_span_context()
            if span_context.is_valid:
                links.append(Link(span_context))
        attributes = {
            SYSTEM: self.system,
            OPERATION_TYPE: "process",
            OPERATION_NAME: "process",
            DESTINATION: channel,
            DESTINATION_TEMPLATE: template,
            TOPIC: address,
        }
        with self.tracer.start_as_current_span(
            f"process {template}",
            context=producer,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes=attributes,
        ) as span:
            yield span

    def producer_context(self, message: Any) -> Context | None:
        """The trace context in a broker message's CloudEvents envelope, if it has one."""
        text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
        if "traceparent" not in text:  # the cheap test first: most foreign JSON has none
            return None
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if not isinstance(document, dict) or not isinstance(document.get("traceparent"), str):
            return None
        carrier = {"traceparent": document["traceparent"]}
        if isinstance(document.get("tracestate"), str):
            carrier["tracestate"] = document["tracestate"]
        return self._propagator.extract(carrier, context=Context())

    @staticmethod
    def fanned_out(span: Span, event_id: str, clients: int) -> None:
        span.set_attribute(MESSAGE_ID, event_id)
        span.set_attribute(CLIENTS, clients)


def _version() -> str | None:
    """The installed version, for the spans' instrumentation scope (the package's own
    ``__version__`` would be an import of the package root from inside the engine)."""
    try:
        return metadata.version("fastapi-streaming")
    except metadata.PackageNotFoundError:
        return None
