"""How far behind the broker each worker is: lag from publish to fan-out, and the backlog of a
log broker (Redis Streams, Kafka).

The lag is read from what the fan-out keeps anyway: each topic stream remembers the envelope
time of the last event it handed out and when it did (two assignments per event, no clock
parsing); once per sync the difference becomes ``streaming_broker_lag_seconds``. That is the
time from the publisher's clock to this worker's, so on several hosts it includes their clock
skew. The backlog needs the broker and is asked once per interval, apart from the sync.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge

from ..brokers.extensions import BacklogBackend

if TYPE_CHECKING:
    from ..fanout import TopicStream


def envelope_seconds(time: str) -> float | None:
    """Unix time of a CloudEvents ``time`` (RFC 3339), None if it is not one."""
    try:
        return datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class BrokerLagMetrics:
    """``streaming_broker_lag_seconds`` and ``streaming_broker_backlog``, by address template."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Gauge(
            "streaming_broker_lag_seconds",
            "Seconds from an event's publish (its envelope time) to its fan-out on a worker, "
            "for the last event of each topic; the largest over the workers.",
            ["topic"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.backlog = Gauge(
            "streaming_broker_backlog",
            "Messages a log broker (Redis Streams, Kafka) holds that a worker has not read "
            "yet, by topic; the largest over the workers.",
            ["topic"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        #: (address, envelope time) of the last event whose lag was reported, per stream.
        self._seen: dict[str, str] = {}

    def sync(self, streams: Iterable[TopicStream]) -> None:
        """Report the lag of every stream that fanned out a new event since the last sync."""
        lags: dict[str, float] = {}
        for stream in streams:
            time = stream.last_event_time
            if time is None or self._seen.get(stream.address) == time:
                continue
            self._seen[stream.address] = time
            published = envelope_seconds(time)
            if published is None:
                continue
            lag = max(stream.last_fanned_out - published, 0.0)
            lags[stream.template] = max(lag, lags.get(stream.template, 0.0))
        for template, lag in lags.items():
            self.lag.labels(template).set(lag)

    async def refresh(
        self, backend: object, template_of_channel: Callable[[str], str | None]
    ) -> None:
        """Ask a log broker how many messages wait for this worker, per topic."""
        if not isinstance(backend, BacklogBackend):
            return
        behind: dict[str, int] = {}
        for channel, count in (await backend.backlog()).items():
            template = template_of_channel(channel)
            if template is not None:
                behind[template] = behind.get(template, 0) + count
        for template, count in behind.items():
            self.backlog.labels(template).set(count)
