"""Usage analytics: events delivered and published per principal, plan and topic, over time.

``StreamingAPI(analytics=Analytics(...))`` (on by default, in memory or in the broker's
Redis) keeps per-minute buckets; ``await streaming.usage(...)`` and the admin route
``GET {prefix}/admin/usage`` answer from them. See the console guide.
"""

from __future__ import annotations

from .recorder import Analytics, UsageRecorder
from .records import DELIVERED, OTHER, PUBLISHED, THROTTLED, UsageRecord, UsageTotal, summarize
from .stores import MemoryUsageStore, RedisUsageStore, UsageStore

__all__ = [
    "DELIVERED",
    "OTHER",
    "PUBLISHED",
    "THROTTLED",
    "Analytics",
    "MemoryUsageStore",
    "RedisUsageStore",
    "UsageRecord",
    "UsageRecorder",
    "UsageStore",
    "UsageTotal",
    "summarize",
]
