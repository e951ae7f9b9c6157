"""The embedded broker (``memory://``): one process, no network, nothing kept.

broadcaster's memory backend queues every message for a listener task to pick up, which costs
each event an extra trip through the event loop. This one hands a message to its listeners in
the publisher's own step when the connection asks for that (it sets :attr:`deliver`), and
queues it for :meth:`next_published` otherwise, so it still fulfils the plain backend contract.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from broadcaster import BroadcastBackend
from broadcaster import Event as BrokerMessage

from .patterns import PatternListeners


class MemoryBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        self._subscribed: set[str] = set()
        self._published: asyncio.Queue[BrokerMessage] = asyncio.Queue()
        #: Set by :class:`~fastapi_streaming.brokers.connection.BrokerConnection`: called with
        #: every message of a subscribed channel, synchronously, instead of queueing it.
        self.deliver: Callable[[BrokerMessage], None] | None = None
        #: Pattern subscriptions (derived topics reading every channel of a source topic).
        self._patterns = PatternListeners()

    async def connect(self) -> None:
        pass

    async def disconnect(self) -> None:
        pass

    async def subscribe(self, channel: str) -> None:
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)

    async def subscribe_pattern(
        self, pattern: str, deliver: Callable[[BrokerMessage], None]
    ) -> None:
        self._patterns.add(pattern, deliver)

    async def unsubscribe_pattern(
        self, pattern: str, deliver: Callable[[BrokerMessage], None]
    ) -> None:
        self._patterns.remove(pattern, deliver)

    async def publish(self, channel: str, message: Any) -> None:
        for deliver in self._patterns.matching(channel):
            deliver(BrokerMessage(channel=channel, message=message))
        if channel not in self._subscribed:
            return
        event = BrokerMessage(channel=channel, message=message)
        if self.deliver is not None:
            self.deliver(event)
        else:
            self._published.put_nowait(event)

    async def next_published(self) -> BrokerMessage:
        return await self._published.get()
