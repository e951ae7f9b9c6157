"""One process's connection to its broker: shared channel subscriptions and one listener.

``broadcaster.BroadcastBackend`` is the plugin contract: a URL and six async methods. This class
puts on top of it what every backend needs and broadcaster's ``Broadcast`` lacks: one broker
subscription per channel however many listeners want it, taken and released under a per-channel
lock (two first subscribers must not race), a listener task that hands every message to the
listeners of its channel without queueing it anywhere unbounded, and reconnection: when the
backend fails, it reconnects with backoff and jitter and subscribes its channels again, while
listeners stay registered and clients stay connected. What was published while it was cut
off is lost on a broker that keeps nothing, so after resubscribing it tells its interruption
listeners which channels may have missed events, before it hands over anything newer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from broadcaster import BroadcastBackend
from broadcaster import Event as BrokerMessage

from ..redact import redact_url, scrub, secrets_in
from ..stopping import cancel_until_done
from .extensions import ContinuingBackend, DirectDelivery, PingableBackend, PushDelivery

logger = logging.getLogger("fastapi_streaming.broker")

#: Called, in the listener task, with every message of a channel it listens to. It must not block.
Listener = Callable[[BrokerMessage], None]
#: Called, in the listener task, with a channel that may have missed messages while the
#: connection was lost; before any message that came after. It must not block.
InterruptionListener = Callable[[str], None]

#: Backoff between reconnection attempts: from the first delay, doubling up to the last. The
#: last bounds how long after the broker's return the process is back (jitter only shortens).
FIRST_RETRY_DELAY = 0.1
MAX_RETRY_DELAY = 5.0
#: How long a health check waits for the broker to answer its ping.
PING_TIMEOUT = 2.0


class BrokerUnavailable(ConnectionError):
    """The broker cannot be reached right now; the connection is being re-established."""


class BrokerConnection:
    """Shares one backend among all the topics of a :class:`~fastapi_streaming.StreamingAPI`."""

    def __init__(self, backend: BroadcastBackend, *, url: str = "") -> None:
        self.backend = backend
        self.url = url
        #: The URL as clients and logs may see it: no password, no secret parameter.
        self.url_for_display = redact_url(url)
        self._secrets = secrets_in(url)
        self._listeners: dict[str, set[Listener]] = {}
        #: Publishes of this process on their way to the broker, by channel: their events
        #: come back to this process's subscribers within a round trip.
        self.publishing: Counter[str] = Counter()
        self._subscribed: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        #: How many times the connection was re-established (visible in health checks).
        self.reconnects = 0
        #: Told of every channel a reconnection could not continue without a possible loss.
        self.interruption_listeners: list[InterruptionListener] = []
        #: While reconnecting: what a pushing backend read meanwhile, held back until the
        #: interruption is announced, so that every ``gap`` precedes the messages after it.
        self._held: list[BrokerMessage] | None = None

    async def connect(self) -> None:
        try:
            await self.backend.connect()
        except Exception as exc:
            raise BrokerUnavailable(
                f"Cannot connect to the broker at {self.url_for_display}: {self._describe(exc)}"
            ) from None
        self.connected = True
        self.reconnects = 0
        if isinstance(self.backend, DirectDelivery):
            # An in-process backend hands messages over in the publisher's step: no listener.
            self.backend.deliver = self._dispatch
        else:
            if isinstance(self.backend, PushDelivery):
                # Its reader hands messages over itself; the listener only hears of losses.
                self.backend.push = self._dispatch
            self._task = asyncio.create_task(
                self._listen(), name="fastapi-streaming broker listener"
            )

    async def disconnect(self) -> None:
        self.connected = False
        if self._task is not None:
            await cancel_until_done([self._task])
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._held = None  # a reconnection cancelled midway holds nothing back any more
        for channel in list(self._subscribed):
            await _quietly(self.backend.unsubscribe(channel))
        self._subscribed.clear()
        self._listeners.clear()
        await self.backend.disconnect()

    def _describe(self, exc: BaseException) -> str:
        """An exception of the backend as clients and logs may see it: without the URL's
        secrets, which some client libraries quote in their messages."""
        return scrub(repr(exc), self._secrets)

    async def reachable(self) -> bool:
        """Whether the broker answers now: a ping where the backend has one (``ping()``).

        The listener notices a lost broker only through a subscription; with no channel
        subscribed (no client yet), only asking tells a dead broker from a quiet one.
        """
        if not self.connected:
            return False
        if not isinstance(self.backend, PingableBackend):
            return True
        try:
            await asyncio.wait_for(self.backend.ping(), PING_TIMEOUT)
        except Exception as exc:
            logger.info(
                "The broker at %s does not answer (%s)", self.url_for_display, self._describe(exc)
            )
            return False
        return True

    @property
    def channels(self) -> frozenset[str]:
        """The channels this process is subscribed to on the broker."""
        return frozenset(self._subscribed)

    async def publish(self, channel: str, message: str) -> None:
        """Hand a message to the broker, or raise :class:`BrokerUnavailable` at once."""
        if not self.connected:
            raise BrokerUnavailable(
                f"the broker at {self.url_for_display} is unreachable; reconnecting"
            )
        self.publishing[channel] += 1
        try:
            await self.backend.publish(channel, message)
        except Exception as exc:
            raise BrokerUnavailable(
                f"the broker at {self.url_for_display} refused the event: {self._describe(exc)}"
            ) from None
        finally:
            self.publishing[channel] -= 1
            if not self.publishing[channel]:
                del self.publishing[channel]

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
                logger.warning(
                    "Lost the broker at %s (%s); reconnecting.",
                    self.url_for_display,
                    self._describe(exc),
                )
                await self._reconnect()
                continue
            self._dispatch(message)

    def _dispatch(self, message: BrokerMessage) -> None:
        if self._held is not None:
            self._held.append(message)
            return
        for listener in tuple(self._listeners.get(message.channel, ())):
            _call(listener, message)

    async def _reconnect(self) -> None:
        """Connect again with exponential backoff and jitter, then resubscribe every channel."""
        delay = FIRST_RETRY_DELAY
        self._held = []
        while True:
            await _quietly(self.backend.disconnect())
            try:
                await self.backend.connect()
                channels = await self._resubscribe()
            except Exception as exc:
                logger.info(
                    "Broker at %s still unreachable (%s)",
                    self.url_for_display,
                    self._describe(exc),
                )
                await asyncio.sleep(retry_pause(delay))
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            self.connected = True
            self.reconnects += 1
            logger.warning("Reconnected to the broker at %s.", self.url_for_display)
            self._announce_interruption(channels)
            held, self._held = self._held, None
            for message in held:
                self._dispatch(message)
            return

    async def _resubscribe(self) -> tuple[str, ...]:
        """Subscribe the backend to every channel listened to, and return them.

        Listeners come and go while this runs (a client that connects during the outage only
        registers its channel, for the reconnection to subscribe): channels added meanwhile are
        subscribed too, and those left meanwhile unsubscribed, until nothing changed during a
        round. A channel missed here would get nothing, unannounced, until its last listener
        left.
        """
        done: set[str] = set()
        while True:
            for channel in tuple(self._subscribed - done):
                await self.backend.subscribe(channel)
                done.add(channel)
            for channel in tuple(done - self._subscribed):
                await self.backend.unsubscribe(channel)
                done.discard(channel)
            if done == self._subscribed:
                return tuple(done)

    def _announce_interruption(self, channels: tuple[str, ...]) -> None:
        """Tell the listeners which channels may have lost messages during the outage.

        Called before the listener task reads again, so whatever is told comes before every
        message that arrives after the reconnection.
        """
        backend = self.backend
        for channel in channels:
            if isinstance(backend, ContinuingBackend) and backend.continued(channel):
                continue
            for listener in tuple(self.interruption_listeners):
                try:
                    listener(channel)
                except Exception:
                    logger.exception("An interruption listener failed on channel %r", channel)


def retry_pause(delay: float) -> float:
    """The pause before the next attempt: ``delay`` less up to half, so processes spread out.

    Jitter that lengthened the pause (up to 1.5 times, as before) left a process deaf for up
    to 7.5 s after its broker came back.
    """
    return delay * random.uniform(0.5, 1.0)


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
