"""Leases: exactly one process of a deployment computes each derived topic.

A :class:`Lease` is taken for a few seconds and renewed well before it runs out; a process that
dies stops renewing, and another takes the lease over when it expires. The interface is three
methods so that other brokers (a database advisory lock, a NATS KV entry) can add theirs: a
backend implementing :class:`~.hosting.DerivedTopicBackend` gives its own, and :func:`lease_for`
picks a built-in one by the broker URL's scheme.

- ``memory://`` is one process, so that process always owns (:class:`LocalLease`).
- ``redis://`` and ``redis-stream://`` use ``SET key token NX PX ttl`` to take the lease, and a
  compare-and-extend script to renew it, so only the holder can renew or release it.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from redis.asyncio import Redis


#: Milliseconds a lease lasts unless renewed; the owner renews every third of it.
DEFAULT_TTL_MS = 3000


class Lease(Protocol):
    """The right to compute one derived topic, held by at most one process at a time."""

    name: str
    ttl_ms: int

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it; True if this process holds it now."""
        ...

    async def renew(self) -> bool:
        """Extend a held lease; False if it was lost (expired and taken by another)."""
        ...

    async def release(self) -> None:
        """Give the lease up at once, so another process need not wait for it to expire."""
        ...

    async def close(self) -> None: ...


class LocalLease:
    """For a broker that lives in one process: that process is the whole deployment."""

    def __init__(self, name: str, ttl_ms: int = DEFAULT_TTL_MS) -> None:
        self.name = name
        self.ttl_ms = ttl_ms

    async def acquire(self) -> bool:
        return True

    async def renew(self) -> bool:
        return True

    async def release(self) -> None:
        pass

    async def close(self) -> None:
        pass


_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisLease:
    """A lease in Redis: a key holding the owner's token, expiring unless renewed."""

    def __init__(self, url: str, name: str, ttl_ms: int = DEFAULT_TTL_MS) -> None:
        self.name = name
        self.ttl_ms = ttl_ms
        self.key = f"fastapi-streaming:lease:{name}"
        self.token = f"{os.getpid()}-{uuid.uuid4().hex}"
        # Imported here: only derived topics on a Redis broker need the redis extra.
        from redis.asyncio import Redis as RedisClient

        self._client: Redis = RedisClient.from_url(url)

    async def acquire(self) -> bool:
        taken = await self._client.set(self.key, self.token, nx=True, px=self.ttl_ms)
        if taken:
            return True
        # Ours already (a renewal whose reply was lost counted as a failure): extend it, or
        # it would run out a moment after we were told we hold it.
        return await self.renew()

    async def renew(self) -> bool:
        renewed = await self._client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms)
        return bool(renewed)

    async def release(self) -> None:
        await self._client.eval(_RELEASE, 1, self.key, self.token)

    async def close(self) -> None:
        await self._client.aclose()

    def fence(self) -> tuple[str, str, str, str]:
        """What a checkpoint commit checks: that this key still holds this process's token."""
        return self.key, self.token, "", ""


REDIS_SCHEMES = ("redis", "rediss", "redis-stream", "rediss-stream")


def redis_url(broker_url: str) -> str:
    """The plain Redis URL of a ``redis://`` or ``redis-stream://`` broker URL."""
    parts = urlsplit(broker_url)
    plain = "rediss" if parts.scheme.startswith("rediss") else "redis"
    return urlunsplit(parts._replace(scheme=plain, query=""))


def lease_for(broker_url: str, name: str, ttl_ms: int = DEFAULT_TTL_MS) -> Lease:
    """The lease that elects one owner of ``name`` among the processes sharing the broker."""
    parts = urlsplit(broker_url)
    scheme = parts.scheme
    if scheme == "memory":
        return LocalLease(name, ttl_ms)
    if scheme in REDIS_SCHEMES:
        return RedisLease(redis_url(broker_url), name, ttl_ms)
    raise ValueError(
        f"Derived topics need a lease so that one process computes each of them, and the "
        f"broker {scheme}:// has none yet. Use memory://, redis://, redis-stream://, kafka:// "
        "or nats:// for the streaming API, or give this broker's backend one "
        "(fastapi_streaming.processing.hosting.DerivedTopicBackend)."
    )
