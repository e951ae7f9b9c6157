"""One process's connection to its broker: shared channel subscriptions and one listener.

``broadcaster.BroadcastBackend`` is the plugin contract: a URL and six async methods. This class
puts on top of it what every backend needs and broadcaster's ``Broadcast`` lacks: one broker
subscription per channel however many listeners want it, taken and released under a per-channel
lock (two first subscribers must not race), a listener task that hands every message to the
listeners of its channel without queueing it anywhere unbounded, and reconnection: when the
backend fails, it reconnects with backoff and jitter and subscribes its channels again, while
listeners stay registered and clients stay connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from broadcaster import BroadcastBackend
from broadcaster import Event as BrokerMessage

from .extensions import DirectDelivery

logger = logging.getLogger("fastapi_streaming.broker")

#: Called, in the listener task, with every message of a channel it listens to. It must not block.
Listener = Callable[[BrokerMessage], None]

#: Backoff between reconnection attempts: from the first delay, doubling up to the last.
FIRST_RETRY_DELAY = 0.1
MAX_RETRY_DELAY = 5.0


class BrokerUnavailable(ConnectionError):
    """The broker cannot be reached right now; the connection is being re-established."""


class BrokerConnection:
    """Shares one backend among all the topics of a :class:`~fastapi_streaming.StreamingAPI`."""

    def __init__(self, backend: BroadcastBackend, *, url: str = "") -> None:
        self.backend = backend
        self.url = url
        self._listeners: dict[str, set[Listener]] = {}
        self._subscribed: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        #: How many times the connection was re-established (visible in health checks).
        self.reconnects = 0

    async def connect(self) -> None:
        await self.backend.connect()
        self.connected = True
        self.reconnects = 0
        if isinstance(self.backend, DirectDelivery):
            # An in-process backend hands messages over in the publisher's step: no listener.
            self.backend.deliver = self._dispatch
        else:
            self._task = asyncio.create_task(
                self._listen(), name="fastapi-streaming broker listener"
            )

    async def disconnect(self) -> None:
        self.connected = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for channel in list(self._subscribed):
            await _quietly(self.backend.unsubscribe(channel))
        self._subscribed.clear()
        self._listeners.clear()
        await self.backend.disconnect()

    @property
    def url_for_display(self) -> str:
        """The broker URL without its password, fit for logs and health answers."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def channels(self) -> frozenset[str]:
        """The channels this process is subscribed to on the broker."""
        return frozenset(self._subscribed)

    async def publish(self, channel: str, message: str) -> None:
        """Hand a message to the broker, or raise :class:`BrokerUnavailable` at once."""
        if not self.connected:
            raise BrokerUnavailable(f"the broker at {self.url} is unreachable; reconnecting")
        try:
            await self.backend.publish(channel, message)
        except Exception as exc:
            raise BrokerUnavailable(f"the broker at {self.url} refused the event: {exc}") from exc

    async def subscribe(self, channel: str, listener: Listener) -> None:
        """Add a listener; the first one for a channel subscribes on the broker."""
        async with self._lock(channel):
            self._listeners.setdefault(channel, set()).add(listener)
            if channel not in self._subscribed:
                if self.connected:  # else the reconnection subscribes it
                    try:
                        await self.backend.subscribe(channel)
                    except BaseException:
                        self._discard(channel, listener)
                        raise
                self._subscribed.add(channel)

    async def unsubscribe(self, channel: str, listener: Listener) -> None:
        """Remove a listener; the last one for a channel unsubscribes on the broker."""
        async with self._lock(channel):
            self._discard(channel, listener)
            if channel in self._subscribed and channel not in self._listeners:
                self._subscribed.discard(channel)
                if self.connected:
                    await self.backend.unsubscribe(channel)

    def _discard(self, channel: str, listener: Listener) -> None:
        listeners = self._listeners.get(channel)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[channel]

    def _lock(self, channel: str) -> asyncio.Lock:
        lock = self._locks.get(channel)
        if lock is None:
            lock = self._locks[channel] = asyncio.Lock()
        return lock

    async def _listen(self) -> None:
        while True:
            try:
                message = await self.backend.next_published()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected = False
                logger.warning("Lost the broker at %s (%r); reconnecting.", self.url, exc)
                await self._reconnect()
                continue
            self._dispatch(message)

    def _dispatch(self, message: BrokerMessage) -> None:
        for listener in tuple(self._listeners.get(message.channel, ())):
            _call(listener, message)

    async def _reconnect(self) -> None:
        """Connect again with exponential backoff and jitter, then resubscribe every channel."""
        delay = FIRST_RETRY_DELAY
        while True:
            await _quietly(self.backend.disconnect())
            try:
                await self.backend.connect()
                for channel in tuple(self._subscribed):
                    await self.backend.subscribe(channel)
            except Exception as exc:
                logger.info("Broker at %s still unreachable (%r)", self.url, exc)
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            self.connected = True
            self.reconnects += 1
            logger.warning("Reconnected to the broker at %s.", self.url)
            return


async def _quietly(step: Awaitable[None]) -> None:
    """Await a clean-up step of a backend that already failed, whatever it raises.

    Some clients raise ``CancelledError`` from their own clean-up after a lost connection
    (aiokafka's consumer does); that must not end the task that is reconnecting, unless that
    task itself is being cancelled.
    """
    try:
        await step
    except asyncio.CancelledError:
        task = asyncio.current_task()
        cancelling = getattr(task, "cancelling", None)  # Python 3.11+
        if cancelling is None or cancelling():
            raise
        logger.debug("A failed backend raised CancelledError while disconnecting")
    except Exception as exc:
        logger.debug("A failed backend raised %r while disconnecting", exc)


def _call(listener: Listener, message: Any) -> None:
    try:
        listener(message)
    except Exception:
        logger.exception("A listener failed on a message of channel %r", message.channel)
