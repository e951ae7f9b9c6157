"""The WebSub hub's metrics: deliveries by outcome, retries and subscriptions that ran out of
attempts (by address template), and the retry queue in the database."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from ..websub.delivery import DeliveryWorker
    from ..websub.repository import Repository

#: Turns a cumulative total into what it grew by since the last call (see the exporter).
Growth = Callable[[tuple[str, ...], int], int]


class WebSubMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "streaming_websub_deliveries",
            "WebSub delivery attempts, by outcome: delivered, failed (retried until the "
            "attempts run out), gone (410: the subscription ends), over_quota (not attempted).",
            ["outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "streaming_websub_retries",
            "Failed WebSub delivery attempts that another attempt follows, by topic.",
            ["topic"],
            registry=registry,
        )
        self.dead = Counter(
            "streaming_websub_dead_subscriptions",
            "Times a WebSub subscription ran out of attempts for an event (the event is given "
            "up for it; the subscription stays until its lease ends), by topic.",
            ["topic"],
            registry=registry,
        )
        self.retry_queue = Gauge(
            "streaming_websub_retry_queue",
            "WebSub deliveries waiting for another attempt after a failed one (all workers'; "
            "read from the database).",
            registry=registry,
            multiprocess_mode="livemax",
        )

    def sync(
        self, worker: DeliveryWorker, growth: Growth, template_of: Callable[[str], str]
    ) -> None:
        outcomes = {
            "delivered": worker.delivered,
            "failed": worker.failures,
            "gone": worker.gone,
            "over_quota": worker.over_quota,
        }
        for outcome, total in outcomes.items():
            grown = growth(("websub", outcome), total)
            if grown:
                self.deliveries.labels(outcome).inc(grown)
        self._by_topic(self.retries, "websub_retries", worker.retries, growth, template_of)
        self._by_topic(self.dead, "websub_dead", worker.dead, growth, template_of)

    @staticmethod
    def _by_topic(
        counter: Counter,
        name: str,
        totals: Mapping[str, int],
        growth: Growth,
        template_of: Callable[[str], str],
    ) -> None:
        # Totals are kept per concrete address (few: those with subscriptions) and reported
        # by template, so the series stay those of the declared topics.
        by_template: dict[str, int] = {}
        for address, total in tuple(totals.items()):
            grown = growth((name, address), total)
            if grown:
                template = template_of(address)
                by_template[template] = by_template.get(template, 0) + grown
        for template, grown in by_template.items():
            counter.labels(template).inc(grown)

    async def refresh(self, repo: Repository) -> None:
        self.retry_queue.set(await repo.retry_queue_depth())
