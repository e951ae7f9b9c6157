"""After a reconnection, the ``gap`` of a channel comes before every message read after it.

A pushing backend (Redis Streams) starts reading a channel as soon as it is subscribed again,
while the broker connection is still resubscribing the others; only then does it announce
which channels may have lost messages. What the reader pushes meanwhile must wait
(``BrokerConnection._held``) until that announcement is queued: a message before its channel's
``gap`` would tell clients that the outage came after it, and a resume would take it as lost.

The real Redis Streams backend on a private redis-server (stopped and started by its PID). Two
hooks make the interleaving certain instead of likely: the reconnection waits until the test
has written into Redis, and ``subscribe`` returns only once the reader has pushed what the
stream held, as a slow resubscription of another channel lets it do.
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
    only after its reader has pushed an entry of the channel."""

    def __init__(self, url: str) -> None:
        self.pushed = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()
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
        await self.gate.wait()
        await super().connect()

    async def subscribe(self, channel: str) -> None:
        self.pushed.clear()
        resubscribing = channel in self._resume
        await super().subscribe(channel)
        if resubscribing:
            await self.pushed.wait()  # (no wait_for: on Python 3.11 it can swallow a cancel)


async def test_a_message_read_while_resubscribing_comes_after_the_gap() -> None:
    channel = f"order-{uuid.uuid4().hex[:8]}"
    with private_redis("redis-stream") as redis:
        backend = ReaderFirst(redis.url)
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
            for _ in range(200):  # the reader notices at once; bounded, not a timed assertion
                if not broker.connected:
                    break
                await asyncio.sleep(0.05)
            assert not broker.connected
            await redis.start()  # empty: the stream cannot vouch for the outage
            direct = Redis(port=redis.process.port)
            await direct.xadd(channel, {"message": "during"})  # another process published
            await direct.aclose()
            arrived.clear()
            backend.gate.set()

            while ("message", "during") not in seen:
                arrived.clear()
                await asyncio.wait_for(arrived.wait(), 20)
            for _ in range(200):  # the reconnection ends with the gap and what it held
                if broker.connected:
                    break
                await asyncio.sleep(0.05)
        finally:
            await broker.disconnect()
    assert seen == [("message", "before"), ("gap", channel), ("message", "during")]
