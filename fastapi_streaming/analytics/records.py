"""What usage analytics answers with: counts per time bucket, principal, plan and topic.

Kept free of any storage, so the Python API, the JSON route and the console share one shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: Events handed to a principal's connections.
DELIVERED = "delivered"
#: Events a principal published (HTTP, WebSocket; server code's ``emit`` as ``(server)``).
PUBLISHED = "published"
#: Requests, messages and streams a principal's plan refused or ended.
THROTTLED = "throttled"
KINDS = (DELIVERED, PUBLISHED, THROTTLED)

#: What principals past a bucket's ``max_principals`` are counted as.
OTHER = "(other)"

#: A count's key in a bucket: (principal, plan, topic template, kind).
Key = tuple[str, str, str, str]

#: The fields a summary may group by.
GROUPS = ("principal", "plan", "topic")


@dataclass(frozen=True)
class UsageRecord:
    """The usage of one principal under one plan on one topic (address template) during one
    time bucket. Throttles are per principal and plan: their ``topic`` is empty."""

    start: datetime
    principal: str
    plan: str
    topic: str
    delivered: int = 0
    published: int = 0
    throttled: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "principal": self.principal,
            "plan": self.plan,
            "topic": self.topic,
            "delivered": self.delivered,
            "published": self.published,
            "throttled": self.throttled,
        }


@dataclass
class UsageTotal:
    """Totals over a period, grouped by some of principal, plan and topic."""

    group: dict[str, str]
    delivered: int = 0
    published: int = 0
    throttled: int = 0
    buckets: set[datetime] = field(default_factory=set, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.group,
            "delivered": self.delivered,
            "published": self.published,
            "throttled": self.throttled,
        }


def bucket_start(bucket: int, seconds: int) -> datetime:
    return datetime.fromtimestamp(bucket * seconds, tz=timezone.utc)


def to_records(
    buckets: dict[int, dict[Key, int]], seconds: int, matches: Any = None
) -> list[UsageRecord]:
    """Stored counts as records, oldest bucket first; ``matches(key)`` filters them."""
    records: list[UsageRecord] = []
    for bucket in sorted(buckets):
        rows: dict[tuple[str, str, str], dict[str, int]] = {}
        for key, count in buckets[bucket].items():
            if matches is not None and not matches(key):
                continue
            principal, plan, topic, kind = key
            rows.setdefault((principal, plan, topic), {})[kind] = count
        start = bucket_start(bucket, seconds)
        for (principal, plan, topic), counts in sorted(rows.items()):
            records.append(
                UsageRecord(
                    start,
                    principal,
                    plan,
                    topic,
                    delivered=counts.get(DELIVERED, 0),
                    published=counts.get(PUBLISHED, 0),
                    throttled=counts.get(THROTTLED, 0),
                )
            )
    return records


def summarize(
    records: Iterable[UsageRecord], by: Sequence[str] = ("principal",)
) -> list[UsageTotal]:
    """Totals of ``records`` grouped ``by`` some of ``principal``, ``plan``, ``topic``; the
    largest (delivered + published) first."""
    unknown = [name for name in by if name not in GROUPS]
    if unknown:
        raise ValueError(f"Cannot group usage by {unknown}: use some of {list(GROUPS)}.")
    totals: dict[tuple[str, ...], UsageTotal] = {}
    for record in records:
        values = tuple(getattr(record, name) for name in by)
        total = totals.get(values)
        if total is None:
            total = totals[values] = UsageTotal(dict(zip(by, values, strict=True)))
        total.delivered += record.delivered
        total.published += record.published
        total.throttled += record.throttled
        total.buckets.add(record.start)
    return sorted(
        totals.values(), key=lambda total: (-(total.delivered + total.published), str(total.group))
    )
