"""What one worker process sees: its topics, connections, consumers and drops, right now.

Read from the engine's own totals in one pass over this process's streams and connections
(once per console interval, not per event); rates are the growth of cumulative totals since
the previous snapshot.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..limits import Limiter
    from ..runtime import StreamingRuntime

#: This process, as snapshots name it.
WORKER = f"{socket.gethostname()}:{os.getpid()}"


class Rates:
    """Per-second growth of cumulative totals between two calls."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def rate(self, key: str, total: float, now: float) -> float:
        before = self._last.get(key)
        self._last[key] = (now, total)
        if before is None or now <= before[0] or total < before[1]:
            return 0.0
        return (total - before[1]) / (now - before[0])


class WorkerView:
    """Builds this worker's snapshot (a JSON-able dict)."""

    def __init__(self, worker: str = WORKER) -> None:
        self.worker = worker
        self.rates = Rates()

    def snapshot(self, runtime: StreamingRuntime, limiter: Limiter | None) -> dict[str, Any]:
        now = time.time()
        fanout = runtime.fanout
        topics: dict[str, dict[str, Any]] = {}
        for stream in tuple(fanout.streams.values()):
            entry = topics.setdefault(stream.template, {"subscribers": 0, "addresses": 0})
            entry["subscribers"] += len(stream.clients)
            entry["addresses"] += 1
        sent, _ = fanout.sent_by_template()
        for template in {*sent, *runtime.published, *topics}:
            entry = topics.setdefault(template, {"subscribers": 0, "addresses": 0})
            entry["delivered_per_second"] = self.rates.rate("d" + template, sent[template], now)
            entry["published_per_second"] = self.rates.rate(
                "p" + template, runtime.published[template], now
            )
        transports: Counter[str] = Counter()
        consumers: dict[str, dict[str, Any]] = {}
        dropped = fanout.ended_dropped
        for queue in tuple(fanout.queues):
            transport = queue.transport or "other"
            transports[transport] += 1
            dropped += queue.dropped
            principal = queue.owner.principal if queue.owner is not None else "(server)"
            entry = consumers.setdefault(principal, {"connections": 0, "dropped": 0})
            entry["connections"] += 1
            entry["dropped"] += queue.dropped
            entry.setdefault("transports", {}).setdefault(transport, 0)
            entry["transports"][transport] += 1
        throttles = (
            [
                {"plan": plan, "limit": limit, "count": count}
                for (plan, limit), count in sorted(limiter.throttles.items())
            ]
            if limiter is not None
            else []
        )
        return {
            "worker": self.worker,
            "time": now,
            "topics": topics,
            "transports": dict(transports),
            "consumers": consumers,
            "slow_client_drops": dropped,
            "throttles": throttles,
        }


def merge(snapshots: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Several workers' snapshots as one: counts and rates summed."""
    topics: dict[str, dict[str, float]] = {}
    transports: Counter[str] = Counter()
    consumers: dict[str, dict[str, Any]] = {}
    throttles: Counter[tuple[str, str]] = Counter()
    drops = 0
    for snapshot in snapshots:
        for template, figures in snapshot["topics"].items():
            entry = topics.setdefault(template, {})
            for name, value in figures.items():
                entry[name] = entry.get(name, 0) + value
        transports.update(snapshot["transports"])
        for principal, held in snapshot["consumers"].items():
            consumer = consumers.setdefault(
                principal, {"connections": 0, "dropped": 0, "transports": {}}
            )
            consumer["connections"] += held["connections"]
            consumer["dropped"] += held["dropped"]
            for transport, count in held["transports"].items():
                consumer["transports"][transport] = consumer["transports"].get(transport, 0) + count
        drops += snapshot["slow_client_drops"]
        for item in snapshot["throttles"]:
            throttles[(item["plan"], item["limit"])] += item["count"]
    return {
        "workers": sorted(snapshot["worker"] for snapshot in snapshots),
        "connections_by_worker": {
            snapshot["worker"]: sum(snapshot["transports"].values()) for snapshot in snapshots
        },
        "topics": [
            {"topic": template, **{k: round(v, 3) for k, v in figures.items()}}
            for template, figures in sorted(topics.items())
        ],
        "transports": dict(sorted(transports.items())),
        "consumers": consumers,
        "slow_client_drops": drops,
        "throttles": [
            {"plan": plan, "limit": limit, "count": count}
            for (plan, limit), count in sorted(throttles.items())
        ],
    }
