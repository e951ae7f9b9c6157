"""Prometheus metrics of a streaming API, served at ``/metrics``.

Nothing is counted per client per event here: the engine keeps plain totals it needs anyway
(events per topic stream, times the clients they went to; publishes per topic; drops per
queue) and this exporter turns their growth into Prometheus counters every ``interval``
seconds and at every scrape. Labels name address templates (``/rooms/{room}``), never
concrete addresses, so their number stays that of the declared topics.

With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before
the server starts (prometheus-client's multiprocess mode): every worker writes its values
there and a scrape of any worker reports the sum. A worker's last ``interval`` of counts shows
up at its next sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response

from ..stopping import cancel_until_done
from .broker import BrokerLagMetrics
from .websub import WebSubMetrics

if TYPE_CHECKING:
    from ..context import StreamingContext
    from ..websub.hub import WebSubHub


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class _Totals:
    """Turns cumulative totals into increments (a total that went down restarted from 0)."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, ...], int] = {}

    def growth(self, key: tuple[str, ...], total: int) -> int:
        before = self.last.get(key, 0)
        self.last[key] = total
        return total - before if total >= before else total


class MetricsExporter:
    """The Prometheus metrics of one streaming API (see the observability guide)."""

    def __init__(
        self,
        streaming: StreamingContext,
        *,
        websub: WebSubHub | None = None,
        interval: float = 1.0,
    ) -> None:
        self.streaming = streaming
        self.websub = websub
        self.interval = interval
        self.registry = CollectorRegistry(auto_describe=True)
        self._totals = _Totals()
        self._connection_series: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None
        registry = self.registry
        self.connections = Gauge(
            "streaming_connections",
            "Clients subscribed, by topic (address template) and transport.",
            ["topic", "transport"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.clients = Gauge(
            "streaming_clients",
            "Client connections of any transport.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.queue_depth = Gauge(
            "streaming_client_queue_depth",
            "Events waiting in clients' queues, all clients together.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.published = Counter(
            "streaming_events_published",
            "Events published into topics (HTTP, WebSocket, emit), by topic.",
            ["topic"],
            registry=registry,
        )
        self.published_bytes = Counter(
            "streaming_events_published_bytes",
            "Payload bytes of the events published, by topic.",
            ["topic"],
            registry=registry,
        )
        self.sent = Counter(
            "streaming_events_sent",
            "Events handed to subscribed clients, by topic.",
            ["topic"],
            registry=registry,
        )
        self.sent_bytes = Counter(
            "streaming_events_sent_bytes",
            "Payload bytes handed to subscribed clients (each event's data times its clients).",
            ["topic"],
            registry=registry,
        )
        self.resumes = Counter(
            "streaming_resumes",
            "Resumes from a Last-Event-ID, by outcome: complete, or gap (events may be missing).",
            ["outcome"],
            registry=registry,
        )
        #: Deliveries, retries, subscriptions out of attempts, the retry queue.
        self.websub_metrics = WebSubMetrics(registry)
        self.websub_deliveries = self.websub_metrics.deliveries
        #: Lag from publish to fan-out, and a log broker's backlog.
        self.broker_lag = BrokerLagMetrics(registry)
        self._templates: dict[str, str] = {}
        self.dropped = Counter(
            "streaming_events_dropped",
            "Events a client did not get, by reason.",
            ["reason"],
            registry=registry,
        )
        self.reconnects = Counter(
            "streaming_broker_reconnects",
            "Times the broker connection was lost and made again.",
            registry=registry,
        )
        self.throttles = Counter(
            "streaming_quota_throttles",
            "Requests, messages and streams refused or ended by a plan, by plan and limit.",
            ["plan", "limit"],
            registry=registry,
        )
        self.counted = Counter(
            "streaming_quota_events",
            "Events counted against plans' quotas, by plan.",
            ["plan"],
            registry=registry,
        )

    # -- keeping up with the engine -----------------------------------------------------------

    def _add(self, counter: Counter, name: str, totals: Mapping[str, int]) -> None:
        for label, total in totals.items():
            grown = self._totals.growth((name, label), total)
            if grown:
                counter.labels(label).inc(grown)

    def sync(self) -> None:
        """Bring the Prometheus values up to the engine's totals (cheap: one pass over the
        topic streams and client queues of this process)."""
        streaming = self.streaming
        if streaming.is_running:
            runtime = streaming.runtime
            fanout = runtime.fanout
            self._add(self.published, "published", runtime.published)
            self._add(self.published_bytes, "published_bytes", runtime.published_bytes)
            sent, sent_bytes = fanout.sent_by_template()
            self._add(self.sent, "sent", sent)
            self._add(self.sent_bytes, "sent_bytes", sent_bytes)
            self._sync_connections()
            queues = tuple(fanout.queues)
            self.clients.set(len(queues))
            self.queue_depth.set(sum(len(queue) for queue in queues))
            dropped = fanout.ended_dropped + sum(queue.dropped for queue in queues)
            invalid = sum(runtime.invalid.values())
            self._add(self.dropped, "dropped", {"slow_client": dropped, "validation": invalid})
            gaps = runtime.resume_gaps
            self._add(self.resumes, "resumes", {"complete": runtime.resumes - gaps, "gap": gaps})
            self._increment(self.reconnects, ("reconnects",), runtime.broker.reconnects)
            self.broker_lag.sync(tuple(fanout.streams.values()))
        self._sync_websub()
        limits = streaming.limits
        if limits is not None:
            for (plan, limit), total in tuple(limits.throttles.items()):
                grown = self._totals.growth(("throttles", plan, limit), total)
                if grown:
                    self.throttles.labels(plan, limit).inc(grown)
            self._add(self.counted, "counted", limits.counted)

    def _sync_connections(self) -> None:
        """Clients by topic and transport: one pass over the subscriptions, once a second."""
        clients: dict[tuple[str, str], int] = {}
        for stream in self.streaming.runtime.fanout.streams.values():
            for client in stream.clients:
                key = (stream.template, client.transport or "other")
                clients[key] = clients.get(key, 0) + 1
        # Series seen before and now gone go to 0 rather than vanish.
        for key in self._connection_series - clients.keys():
            self.connections.labels(*key).set(0)
        for key, count in clients.items():
            self.connections.labels(*key).set(count)
        self._connection_series |= clients.keys()

    def _sync_websub(self) -> None:
        if self.websub is None:
            return
        try:
            worker = self.websub.running.worker
        except RuntimeError:
            return  # not running
        self.websub_metrics.sync(worker, self._totals.growth, self._template_of)

    def _template_of(self, address: str) -> str:
        """The address template of a concrete address (itself if no topic matches)."""
        template = self._templates.get(address)
        if template is None:
            found = self.streaming.topics.resolve(address)
            template = found[0].address if found is not None else address
            if len(self._templates) < 10_000:  # addresses of WebSub subscriptions: few
                self._templates[address] = template
        return template

    async def refresh(self) -> None:
        """Ask what only the broker and the database know: a log broker's backlog, the WebSub
        retry queue. Once per interval and at each scrape; a failure leaves the old values."""
        streaming = self.streaming
        if streaming.is_running:
            runtime = streaming.runtime
            channels = {s.channel: s.template for s in tuple(runtime.fanout.streams.values())}
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.broker_lag.refresh(runtime.broker.backend, channels.get), self.interval
                )
        if self.websub is not None:
            try:
                repo = self.websub.running.repo
            except RuntimeError:
                return  # not running
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.websub_metrics.refresh(repo), self.interval)

    def _increment(self, counter: Counter, key: tuple[str, ...], total: int) -> None:
        grown = self._totals.growth(key, total)
        if grown:
            counter.inc(grown)

    # -- running and serving ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fastapi-streaming metrics")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_until_done([self._task])
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.sync()
        if multiprocess_mode():
            # This worker's gauges stop counting; its counters stay in the totals.
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.refresh()
            self.sync()

    def render(self) -> tuple[bytes, str]:
        """The text exposition of every metric (of every worker, in multiprocess mode)."""
        self.sync()
        if multiprocess_mode():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def metrics_endpoint(exporter: MetricsExporter) -> Callable[[Request], Awaitable[Response]]:
    """The ``/metrics`` route: the exposition, in Prometheus text format."""

    async def metrics(request: Request) -> Response:
        await exporter.refresh()
        body, content_type = exporter.render()
        return Response(body, media_type=content_type)

    return metrics
