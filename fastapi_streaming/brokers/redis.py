"""Redis pub/sub, for the current redis-py (broadcaster's own backend delivers nothing on 8.x).

broadcaster 0.3.1's ``RedisBackend`` starts its listener before redis-py has recorded any
channel, so the listener exits at once, and one message that is not UTF-8 stops it for every
subscriber. Here one listener task reads the pub/sub connection for as long as the backend is
connected; ``subscribe`` returns once Redis confirmed the subscription; bad messages are logged
and skipped; a lost connection is reported through ``next_published`` so the caller can
reconnect. Publishes are written at once on a connection of their own (:mod:`.redis_direct`),
so an acknowledged publish costs one turn of the event loop, and messages go straight from the
reader to the connection's dispatcher
(:class:`~fastapi_streaming.brokers.extensions.PushDelivery`), so everything one read from Redis
brought reaches the topics together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from broadcaster import BroadcastBackend
from redis import asyncio as aioredis
from redis.asyncio.client import PubSub

from ..stopping import cancel_until_done
from .hookspecs import BrokerMessage
from .redis_direct import DirectConnection

logger = logging.getLogger("fastapi_streaming.broker.redis")

#: How long ``subscribe``/``unsubscribe`` and a publish wait for Redis to answer.
CONFIRM_TIMEOUT = 10.0


class _Lost:
    """Put on the queue when the connection fails, so ``next_published`` raises it."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class RedisBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        self._url = url
        self._client: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._queue: asyncio.Queue[BrokerMessage | _Lost] = asyncio.Queue()
        self._listener: asyncio.Task[None] | None = None
        self._reading = asyncio.Event()
        self._confirmations: dict[tuple[str, str], asyncio.Future[None]] = {}
        #: Set by the broker connection: called with every message as it is read.
        self.push: Callable[[BrokerMessage], None] | None = None
        self._publisher = DirectConnection(url, self._lose, timeout=CONFIRM_TIMEOUT)
        #: Pattern subscriptions (derived topics reading every channel of a source topic);
        #: kept across reconnections, and subscribed again by ``connect``.
        self._patterns: dict[str, list[Callable[[BrokerMessage], None]]] = {}

    async def connect(self) -> None:
        self._client = aioredis.Redis.from_url(self._url)
        await self._client.ping()  # fail now, not on the first event, if Redis is not there
        self._pubsub = self._client.pubsub()
        self._queue = asyncio.Queue()
        self._reading = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(), name="redis pub/sub listener")
        await self._publisher.connect()
        for pattern in self._patterns:
            await self._confirmed("psubscribe", pattern)

    async def disconnect(self) -> None:
        await self._publisher.close()
        if self._listener is not None:
            await cancel_until_done([self._listener])
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        for future in self._confirmations.values():
            future.cancel()
        self._confirmations.clear()
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                # redis-py annotates PubSub.aclose from 8.2 on; before, it is untyped.
                await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
            self._pubsub = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    async def subscribe(self, channel: str) -> None:
        await self._confirmed("subscribe", channel)

    async def unsubscribe(self, channel: str) -> None:
        await self._confirmed("unsubscribe", channel)

    async def subscribe_pattern(
        self, pattern: str, deliver: Callable[[BrokerMessage], None]
    ) -> None:
        listeners = self._patterns.setdefault(pattern, [])
        listeners.append(deliver)
        if len(listeners) == 1 and self._pubsub is not None:
            await self._confirmed("psubscribe", pattern)

    async def unsubscribe_pattern(
        self, pattern: str, deliver: Callable[[BrokerMessage], None]
    ) -> None:
        listeners = self._patterns.get(pattern, [])
        if deliver in listeners:
            listeners.remove(deliver)
        if not listeners and self._patterns.pop(pattern, None) is not None and self._pubsub:
            await self._confirmed("punsubscribe", pattern)

    async def publish(self, channel: str, message: Any) -> None:
        """Publish; returns once Redis has taken the message."""
        await self._publisher.execute("PUBLISH", channel, message)

    def _lose(self, error: BaseException) -> None:
        """The publishing connection failed: reconnect the backend as a whole."""
        self._queue.put_nowait(_Lost(error))

    async def ping(self) -> None:
        """Ask Redis for an answer (health checks): a subscription-less pub/sub notices
        nothing when Redis goes away."""
        if self._client is None:
            raise ConnectionError("the Redis backend is not connected")
        await self._client.ping()

    async def next_published(self) -> BrokerMessage:
        item = await self._queue.get()
        if isinstance(item, _Lost):
            raise ConnectionError(f"lost the Redis pub/sub connection: {item.error!r}")
        return item

    async def _confirmed(self, kind: str, channel: str) -> None:
        """Send (un)subscribe and wait until Redis answers it on the pub/sub connection."""
        assert self._pubsub is not None, "connect() first"
        key = (kind, channel)
        future = self._confirmations.get(key)
        if future is None or future.done():
            future = self._confirmations[key] = asyncio.get_running_loop().create_future()
        await getattr(self._pubsub, kind)(channel)
        self._reading.set()  # the connection exists now: the listener may read it
        try:
            await asyncio.wait_for(asyncio.shield(future), CONFIRM_TIMEOUT)
        finally:
            if self._confirmations.get(key) is future and future.done():
                del self._confirmations[key]

    async def _listen(self) -> None:
        await self._reading.wait()
        assert self._pubsub is not None
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._queue.put_nowait(_Lost(exc))
                return
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = _text(message["channel"])
        if kind in ("subscribe", "unsubscribe", "psubscribe", "punsubscribe"):
            future = self._confirmations.get((kind, channel or ""))
            if future is not None and not future.done():
                future.set_result(None)
            return
        if kind not in ("message", "pmessage") or channel is None:
            return
        data = _text(message["data"])
        if data is None:
            logger.warning("Skipped a message on Redis channel %r that is not UTF-8", channel)
            return
        if kind == "message":
            event = BrokerMessage(channel=channel, message=data)
            if self.push is not None:
                self.push(event)
            else:
                self._queue.put_nowait(event)
            return
        for deliver in tuple(self._patterns.get(_text(message["pattern"]) or "", ())):
            try:
                deliver(BrokerMessage(channel=channel, message=data))
            except Exception:
                logger.exception("A pattern listener failed on channel %r", channel)


def _text(value: bytes | str) -> str | None:
    if isinstance(value, str):
        return value
    try:
        return value.decode()
    except UnicodeDecodeError:
        return None
