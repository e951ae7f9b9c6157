"""Where usage counts and the console's per-worker snapshots live: this process, or Redis.

A store takes a whole flush at once (every count of every bucket touched since the last one):
in Redis one pipeline, ``HINCRBY`` per count in one hash per bucket, so counting costs a round
trip per flush interval and process, never one per event. Buckets expire after the retention.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

from .records import Key


class UsageStore(Protocol):
    async def add(self, counts: Mapping[int, Mapping[Key, int]]) -> None:
        """Add counts, by bucket number."""

    async def read(self, first: int, last: int) -> dict[int, dict[Key, int]]:
        """The counts of buckets ``first`` to ``last`` (inclusive) that hold any."""

    async def put_live(self, worker: str, snapshot: Mapping[str, Any], ttl: float) -> None:
        """Publish this worker's live snapshot, forgotten ``ttl`` seconds after."""

    async def live(self) -> list[dict[str, Any]]:
        """Every worker's latest live snapshot that has not expired."""

    async def close(self) -> None: ...


class MemoryUsageStore:
    """One process: the buckets in a dict, the oldest dropped past the retention."""

    def __init__(self, retention_buckets: int) -> None:
        self.retention = retention_buckets
        self.buckets: dict[int, Counter[Key]] = {}
        self._live: dict[str, tuple[float, dict[str, Any]]] = {}

    async def add(self, counts: Mapping[int, Mapping[Key, int]]) -> None:
        for bucket, values in counts.items():
            self.buckets.setdefault(bucket, Counter()).update(values)
        if self.buckets:
            horizon = max(self.buckets) - self.retention
            for bucket in [b for b in self.buckets if b <= horizon]:
                del self.buckets[bucket]

    async def read(self, first: int, last: int) -> dict[int, dict[Key, int]]:
        return {b: dict(c) for b, c in self.buckets.items() if first <= b <= last}

    async def put_live(self, worker: str, snapshot: Mapping[str, Any], ttl: float) -> None:
        self._live[worker] = (time.time() + ttl, dict(snapshot))

    async def live(self) -> list[dict[str, Any]]:
        now = time.time()
        return [snapshot for until, snapshot in self._live.values() if until > now]

    async def close(self) -> None:
        return None


class RedisUsageStore:
    """Every worker and host that uses one Redis: a hash per bucket, ``HINCRBY`` per count."""

    def __init__(self, url: str, *, namespace: str, retention_seconds: int, bucket_seconds: int):
        import redis.asyncio as redis

        self.client: Any = redis.Redis.from_url(url)
        self.prefix = f"{namespace}:usage:"
        self.live_key = f"{namespace}:console:workers"
        self.expiry = retention_seconds + bucket_seconds

    async def add(self, counts: Mapping[int, Mapping[Key, int]]) -> None:
        if not counts:
            return
        pipe = self.client.pipeline(transaction=False)
        for bucket, values in counts.items():
            name = f"{self.prefix}{bucket}"
            for key, count in values.items():
                pipe.hincrby(name, json.dumps(key, separators=(",", ":")), count)
            pipe.expire(name, self.expiry)
        await pipe.execute()

    async def read(self, first: int, last: int) -> dict[int, dict[Key, int]]:
        pipe = self.client.pipeline(transaction=False)
        numbers = list(range(first, last + 1))
        for bucket in numbers:
            pipe.hgetall(f"{self.prefix}{bucket}")
        found: dict[int, dict[Key, int]] = {}
        for bucket, fields in zip(numbers, await pipe.execute(), strict=True):
            if fields:
                found[bucket] = {
                    tuple(json.loads(field)): int(value) for field, value in fields.items()
                }
        return found

    async def put_live(self, worker: str, snapshot: Mapping[str, Any], ttl: float) -> None:
        body = json.dumps({"until": time.time() + ttl, "snapshot": snapshot})
        await self.client.hset(self.live_key, worker, body)

    async def live(self) -> list[dict[str, Any]]:
        now, found, stale = time.time(), [], []
        for worker, body in (await self.client.hgetall(self.live_key)).items():
            entry = json.loads(body)
            if entry["until"] > now:
                found.append(entry["snapshot"])
            else:
                stale.append(worker)
        if stale:
            await self.client.hdel(self.live_key, *stale)
        return found

    async def close(self) -> None:
        await self.client.aclose()


def open_store(
    url: str, *, namespace: str, retention_seconds: int, bucket_seconds: int
) -> UsageStore:
    if url.startswith("memory://"):
        return MemoryUsageStore(max(1, retention_seconds // bucket_seconds))
    if url.startswith(("redis://", "rediss://")):
        return RedisUsageStore(
            url,
            namespace=namespace,
            retention_seconds=retention_seconds,
            bucket_seconds=bucket_seconds,
        )
    raise ValueError(
        f"Unknown analytics storage {url!r}: use 'memory://' (one process) or "
        "'redis://host:port/db' (shared by every worker)."
    )


def storage_for_broker(broker_url: str) -> str:
    """Redis when the API runs on a Redis broker (then it may have several processes),
    else this process's memory."""
    if broker_url.startswith("redis-stream://"):
        return "redis://" + broker_url[len("redis-stream://") :]
    if broker_url.startswith(("redis://", "rediss://")):
        return broker_url
    return "memory://"
