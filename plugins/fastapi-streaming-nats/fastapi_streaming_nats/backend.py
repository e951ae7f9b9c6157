"""``NATSBackend``: broadcaster's backend interface over one NATS connection.

Each subscribed channel is one core NATS subscription whose messages go into one queue that
``next_published()`` reads, so every message comes out once. In JetStream mode publishing goes
through the stream (stored, acknowledged); live delivery stays on core subscriptions, which see
stream messages too, so subscribers do not pay for consumers they do not need.

The backend also hosts derived topics (:mod:`fastapi_streaming_nats.processing`): it elects
their owners through a JetStream KV bucket and, in JetStream mode, feeds them from checkpoints;
on core NATS their owners read the sources live through wildcard subscriptions.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import nats
import nats.js.errors
from broadcaster import BroadcastBackend
from fastapi_streaming.brokers.hookspecs import BrokerMessage
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from fastapi_streaming_nats.options import NATSOptions

if TYPE_CHECKING:
    from fastapi_streaming.processing.lease import Lease
    from fastapi_streaming.processing.stream_feed import Feed

logger = logging.getLogger("fastapi_streaming.nats")


class BrokerClosed(ConnectionError):
    """The connection to NATS closed for good (not by ``disconnect()``)."""


class NATSBackend(BroadcastBackend):
    """Channel ``stocks.AAPL`` is subject ``[<prefix>.]stocks.AAPL``."""

    def __init__(self, url: str) -> None:
        self.options = NATSOptions.from_url(url)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._subscriptions: dict[str, Subscription] = {}
        #: subject -> channel, for every subject whose messages are delivered.
        self._channels: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._inbox: asyncio.Queue[Msg | None] = asyncio.Queue()
        self._closing = False
        #: Derived topics' owners' (glob pattern, callback) pairs, kept across reconnections,
        #: and their wildcard subscriptions on the current connection.
        self._listeners: list[tuple[str, Callable[[BrokerMessage], None]]] = []
        self._patterns: dict[tuple[str, Callable[[BrokerMessage], None]], Subscription] = {}

    async def connect(self) -> None:
        self._closing = False
        self._inbox = asyncio.Queue()
        self._nc = await nats.connect(
            servers=[self.options.server],
            name=self.options.name,
            max_reconnect_attempts=self.options.reconnect_attempts,
            reconnect_time_wait=self.options.reconnect_wait,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            closed_cb=self._on_closed,
        )
        if self.options.jetstream:
            self._js = self._nc.jetstream()
            await self._ensure_stream(self._js)
        for listener in self._listeners:  # subscribed again after a lost connection
            await self._subscribe_pattern(*listener)

    async def disconnect(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        self._closing = True
        self._subscriptions.clear()
        self._channels.clear()
        self._patterns.clear()
        if nc is not None:
            await nc.close()
        # close() cancels the subscriptions' delivery tasks without waiting for them; let the
        # cancellations land so nothing of this connection runs after disconnect() returns.
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    async def subscribe(self, channel: str) -> None:
        subject = self.options.subject(channel)
        async with self._lock(subject):
            if subject in self._subscriptions:
                return
            nc = self._connected()
            self._channels[subject] = channel
            try:
                self._subscriptions[subject] = await nc.subscribe(subject, cb=self._deliver)
                await _written_and_read(nc)
            except BaseException:
                self._channels.pop(subject, None)
                subscription = self._subscriptions.pop(subject, None)
                if subscription is not None and not nc.is_closed:
                    await subscription.unsubscribe()
                raise

    async def unsubscribe(self, channel: str) -> None:
        subject = self.options.subject(channel)
        async with self._lock(subject):
            subscription = self._subscriptions.pop(subject, None)
            self._channels.pop(subject, None)  # messages still in flight are dropped
            if subscription is not None:
                await subscription.unsubscribe()

    async def publish(self, channel: str, message: Any) -> None:
        if not isinstance(message, str):
            raise TypeError(f"messages are str, not {type(message).__name__}")
        subject = self.options.subject(channel)
        payload = message.encode("utf-8")
        nc = self._connected()
        if not nc.is_connected:
            # The client would buffer the message until it reconnects, and a JetStream publish
            # would wait for an acknowledgement that cannot come: say so at once instead, so
            # the publisher learns of the outage (fastapi-streaming answers 503).
            raise ConnectionError(f"NATS at {self.options.server} is unreachable; reconnecting")
        if len(payload) > nc.max_payload:
            raise ValueError(
                f"a message of {len(payload)} bytes exceeds the NATS server's max_payload size "
                f"limit of {nc.max_payload} bytes"
            )
        if self._js is None:
            await nc.publish(subject, payload)
            return
        try:
            await self._js.publish(subject, payload, stream=self.options.stream)
        except nats.js.errors.NoStreamResponseError:
            raise ConnectionError(
                f"no JetStream stream stored subject {subject!r}: stream "
                f"{self.options.stream!r} does not capture it or JetStream is unavailable"
            ) from None

    # -- derived topics ----------------------------------------------------------------------

    def derived_topic_lease(self, name: str, ttl_ms: int) -> Lease:
        """A key in the KV bucket ``<stream>_LEASES`` that expires unless renewed."""
        from fastapi_streaming_nats.processing import KVLease

        return KVLease(self.options, name, ttl_ms)

    def derived_topic_feed(
        self, lease: Lease, patterns: Sequence[str], accepts: Callable[[str], bool]
    ) -> Feed | None:
        """In JetStream mode, the stream from the checkpoint on; on core NATS none (the owner
        reads live through :meth:`subscribe_pattern`)."""
        if not self.options.jetstream:
            return None
        from fastapi_streaming_nats.processing import JetStreamFeed, KVLease

        assert isinstance(lease, KVLease)
        return JetStreamFeed(self.options, lease, patterns, accepts)

    async def subscribe_pattern(
        self, pattern: str, deliver: Callable[[BrokerMessage], None]
    ) -> None:
        """Deliver the messages of every channel matching the glob ``pattern``: a wildcard
        subscription to a subject covering it, whose messages are matched against the glob."""
        if (pattern, deliver) in self._listeners:
            return
        self._listeners.append((pattern, deliver))
        await self._subscribe_pattern(pattern, deliver)

    async def unsubscribe_pattern(
        self, pattern: str, deliver: Callable[[BrokerMessage], None]
    ) -> None:
        if (pattern, deliver) in self._listeners:
            self._listeners.remove((pattern, deliver))
        subscription = self._patterns.pop((pattern, deliver), None)
        if subscription is not None and self._nc is not None and not self._nc.is_closed:
            await subscription.unsubscribe()

    async def _subscribe_pattern(
        self, pattern: str, deliver: Callable[[BrokerMessage], None]
    ) -> None:
        from fastapi_streaming_nats.processing import filter_subject

        nc = self._connected()
        options = self.options

        async def matching(msg: Msg) -> None:
            channel = options.channel_of(msg.subject)
            if channel is None or not fnmatch.fnmatchcase(channel, pattern):
                return
            try:
                deliver(BrokerMessage(channel=channel, message=msg.data.decode("utf-8")))
            except UnicodeDecodeError:
                logger.warning("Skipped a message on %r that is not UTF-8 text", msg.subject)

        subject = filter_subject(options, [pattern])
        self._patterns[(pattern, deliver)] = await nc.subscribe(subject, cb=matching)
        await _written_and_read(nc)

    async def ping(self) -> None:
        """A round trip to the server (health checks): ``flush`` waits for its PONG."""
        if self._nc is None or not self._nc.is_connected:
            raise ConnectionError("not connected to NATS")
        await self._nc.flush(timeout=2)

    async def next_published(self) -> BrokerMessage:
        while True:
            msg = await self._inbox.get()
            if msg is None:
                raise BrokerClosed("the NATS connection closed and will not reconnect")
            channel = self._channels.get(msg.subject)
            if channel is None:
                continue  # left the channel while this message was on its way
            try:
                text = msg.data.decode("utf-8")
            except UnicodeDecodeError:
                logger.warning(
                    "Skipped a message of %d bytes on NATS subject %r: it is not UTF-8 text",
                    len(msg.data),
                    msg.subject,
                )
                continue
            return BrokerMessage(channel=channel, message=text)

    async def _deliver(self, msg: Msg) -> None:
        self._inbox.put_nowait(msg)

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        """Create the stream unless it exists; an existing stream is used as its owner set it."""
        name = self.options.stream
        assert name is not None
        try:
            await js.stream_info(name)
            return
        except nats.js.errors.NotFoundError:
            pass
        try:
            await js.add_stream(
                name=name, subjects=self.options.stream_subjects, max_age=self.options.max_age
            )
        except nats.js.errors.BadRequestError:
            await js.stream_info(name)  # another process created it first: fine if it exists

    def _connected(self) -> Client:
        if self._nc is None:
            raise RuntimeError("the NATS backend is not connected: call connect() first")
        return self._nc

    def _lock(self, subject: str) -> asyncio.Lock:
        lock = self._locks.get(subject)
        if lock is None:
            lock = self._locks[subject] = asyncio.Lock()
        return lock

    async def _on_error(self, error: Exception) -> None:
        logger.warning("NATS: %s", error)

    async def _on_disconnected(self) -> None:
        if not self._closing:
            logger.warning("Lost the NATS connection; reconnecting (messages meanwhile are lost)")

    async def _on_reconnected(self) -> None:
        logger.info("Reconnected to NATS; subscriptions are restored")

    async def _on_closed(self) -> None:
        if not self._closing:
            self._inbox.put_nowait(None)


async def _written_and_read(nc: Client) -> None:
    """Return once the server has read every command this client wrote so far (a SUB).

    ``flush()`` alone does not say so: nats-py (2.16) writes its PING straight to the socket,
    while commands such as the SUB of ``subscribe()`` wait in a buffer for the client's flusher
    task, so the PING can go out first and its PONG return before the server has read the SUB.
    A message published from another connection in that moment finds no subscription and is
    dropped: the first message after ``subscribe()`` went missing now and then on a loaded
    machine. While the first PONG is awaited the flusher writes the buffer, so the second PING
    follows the SUB on the wire, and the server answers commands of a connection in order.
    """
    await nc.flush()
    await nc.flush()
