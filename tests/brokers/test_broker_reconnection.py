"""What a broker connection promises across a reconnection, on the real Redis Streams backend.

- The ``gap`` of a channel comes before every message read after the reconnection.
- A channel first listened to while the connection is being re-established is subscribed by
  that reconnection.

A pushing backend (Redis Streams) starts reading a channel as soon as it is subscribed again,
while the broker connection is still resubscribing the others; only then does it announce
which channels may have lost messages. What the reader pushes meanwhile must wait
(``BrokerConnection._held``) until that announcement is queued: a message before its channel's
``gap`` would tell clients that the outage came after it, and a resume would take it as lost.

The real Redis Streams backend on a private redis-server (stopped and started by its PID). Two
hooks make the interleavings certain instead of likely: the reconnection waits at a gate the
test opens (after writing into Redis, or after a client came), and ``subscribe`` returns only
once the reader has pushed what the stream held, as a slow resubscription of another channel
lets it do.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from fastapi_streaming.brokers.connection import BrokerConnection
from fastapi_streaming.brokers.hookspecs import BrokerMessage
from fastapi_streaming.brokers.redis_stream import RedisStreamBackend
from tests.support.redis_control import private_redis

pytestmark = pytest.mark.redis


class ReaderFirst(RedisStreamBackend):
    """Redis Streams whose reconnection waits for a gate, and whose resubscription returns
    only after its reader has pushed an entry of the channel (when ``reader_first``)."""

    def __init__(self, url: str, *, reader_first: bool = False) -> None:
        self.reader_first = reader_first
        self.pushed = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()
        self.at_gate = asyncio.Event()
        self._dispatch: Callable[[BrokerMessage], None] | None = None
        super().__init__(url)

    @property  # type: ignore[override]
    def push(self) -> Callable[[BrokerMessage], None] | None:
        return self._pushing if self._dispatch is not None else None

    @push.setter
    def push(self, dispatch: Callable[[BrokerMessage], None] | None) -> None:
        self._dispatch = dispatch

    def _pushing(self, message: BrokerMessage) -> None:
        assert self._dispatch is not None
        self._dispatch(message)
        self.pushed.set()

    async def connect(self) -> None:
        if not self.gate.is_set():
            self.at_gate.set()
        await self.gate.wait()
        await super().connect()

    async def subscribe(self, channel: str) -> None:
        self.pushed.clear()
        resubscribing = self.reader_first and channel in self._resume
        await super().subscribe(channel)
        if resubscribing:
            await self.pushed.wait()  # (no wait_for: on Python 3.11 it can swallow a cancel)


async def wait_until(condition: Callable[[], bool]) -> None:
    """A bounded wait for what the broker connection does on its own (not a timed assertion)."""
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the broker connection never got there")


async def test_a_message_read_while_resubscribing_comes_after_the_gap() -> None:
    channel = f"order-{uuid.uuid4().hex[:8]}"
    with private_redis("redis-stream") as redis:
        backend = ReaderFirst(redis.url, reader_first=True)
        broker = BrokerConnection(backend, url=redis.url)
        seen: list[tuple[str, str]] = []
        arrived = asyncio.Event()

        def on_message(message: BrokerMessage) -> None:
            seen.append(("message", message.message))
            arrived.set()

        def on_gap(gapped: str) -> None:
            seen.append(("gap", gapped))

        broker.interruption_listeners.append(on_gap)
        await broker.connect()
        try:
            await broker.subscribe(channel, on_message)
            await broker.publish(channel, "before")
            await asyncio.wait_for(arrived.wait(), 10)

            backend.gate.clear()
            await redis.stop()
            await wait_until(lambda: not broker.connected)  # the reader notices at once
            await redis.start()  # empty: the stream cannot vouch for the outage
            direct = Redis(port=redis.process.port)
            await direct.xadd(channel, {"message": "during"})  # another process published
            await direct.aclose()
            arrived.clear()
            backend.gate.set()

            while ("message", "during") not in seen:
                arrived.clear()
                await asyncio.wait_for(arrived.wait(), 20)
            await wait_until(lambda: broker.connected)  # it ends with the gap and what it held
        finally:
            await broker.disconnect()
    assert seen == [("message", "before"), ("gap", channel), ("message", "during")]


async def test_a_channel_first_listened_to_while_reconnecting_is_subscribed() -> None:
    """A client that comes during an outage only registers its channel; the reconnection under
    way, which listed its channels before the client came, must subscribe it as well."""
    old, new = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("old", "new"))
    with private_redis("redis-stream") as redis:
        backend = ReaderFirst(redis.url)
        broker = BrokerConnection(backend, url=redis.url)
        received: asyncio.Queue[BrokerMessage] = asyncio.Queue()
        await broker.connect()
        try:
            await broker.subscribe(old, received.put_nowait)
            await redis.stop()
            await wait_until(lambda: not broker.connected)
            backend.gate.clear()
            await redis.start()
            await asyncio.wait_for(backend.at_gate.wait(), 20)  # reconnecting, channels listed

            await broker.subscribe(new, received.put_nowait)  # a client comes now
            backend.gate.set()
            await wait_until(lambda: broker.connected)
            await broker.publish(new, "for the new client")
            message = await asyncio.wait_for(received.get(), 10)
            assert (message.channel, message.message) == (new, "for the new client")
        finally:
            await broker.disconnect()
