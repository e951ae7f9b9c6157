"""``AMQPBackend``: broadcaster's backend interface over RabbitMQ (AMQP 0-9-1).

Every process publishes to one durable topic exchange with the channel as routing key, and
consumes from one exclusive, auto-delete queue of its own, bound once per subscribed channel:
the broker routes each message to each process once, however many channels match. The
connection is aio-pika's robust one, which reconnects and restores the queue, its bindings and
the consumer.

Derived topics run here too: a pattern subscription (``clicks.*``) is one more binding of the
same queue (``clicks.#``), and the owner of each derived topic is the process holding an
exclusive queue of its own (:mod:`.lease`). RabbitMQ keeps no history for this, so a new owner
starts from what is published after it took over.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from broadcaster import BroadcastBackend
from fastapi_streaming.brokers.hookspecs import BrokerMessage
from fastapi_streaming.brokers.patterns import PatternListeners
from fastapi_streaming.processing.lease import Lease
from fastapi_streaming.processing.stream_feed import Feed

from fastapi_streaming_amqp.lease import ExclusiveQueueLease, lease_queue_name
from fastapi_streaming_amqp.options import AMQPOptions

logger = logging.getLogger("fastapi_streaming.amqp")

#: Seconds between aio-pika's reconnection attempts unless the URL sets ``reconnect_interval``.
#: aio-pika waits 5 s, so deliveries resumed up to 5 s after RabbitMQ was back; an attempt is
#: one TCP connect, cheap enough to make every second.
RECONNECT_INTERVAL = 1.0


class AMQPBackend(BroadcastBackend):
    """Channel ``stocks.AAPL`` is routing key ``stocks.AAPL`` on the exchange of the URL."""

    def __init__(self, url: str) -> None:
        self.options = AMQPOptions.from_url(url)
        self._connection: AbstractRobustConnection | None = None
        self._publishing: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None
        self._exchange_for_bindings: AbstractExchange | None = None
        self._bound: set[str] = set()
        #: Glob pattern -> who gets its messages (derived topics' owners); kept across
        #: reconnections, and bound again by ``connect``.
        self._patterns = PatternListeners()
        self._locks: dict[str, asyncio.Lock] = {}
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def connect(self) -> None:
        self._inbox = asyncio.Queue()
        query = parse_qs(urlsplit(self.options.connection_url).query)
        interval: dict[str, Any] = {}
        if "reconnect_interval" not in query:
            interval["reconnect_interval"] = RECONNECT_INTERVAL
        connection = await aio_pika.connect_robust(
            self.options.connection_url,
            client_properties={"connection_name": "fastapi-streaming"},
            **interval,
        )
        try:
            # Publishing and consuming on separate channels: a publish waiting for its confirm
            # never holds up deliveries.
            publishing = await connection.channel(publisher_confirms=True)
            consuming = await connection.channel(publisher_confirms=False)
            self._publishing = await self._declare_exchange(publishing)
            self._exchange_for_bindings = await self._declare_exchange(consuming)
            self._queue = await consuming.declare_queue(
                f"fastapi_streaming.{uuid.uuid4().hex}", exclusive=True, auto_delete=True
            )
            await self._queue.consume(self._deliver, no_ack=True)
            for pattern in self._patterns:
                await self._queue.bind(self._exchange_for_bindings, binding_key(pattern))
        except BaseException:
            await connection.close()
            raise
        self._connection = connection

    async def disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._publishing = self._queue = self._exchange_for_bindings = None
        self._bound.clear()
        if connection is not None:
            await connection.close()  # the broker deletes the exclusive queue with it

    async def subscribe(self, channel: str) -> None:
        key = self.options.routing_key(channel)
        async with self._lock(key):
            if key in self._bound:
                return
            queue, exchange = self._consuming()
            await queue.bind(exchange, routing_key=key)
            self._bound.add(key)

    async def unsubscribe(self, channel: str) -> None:
        key = self.options.routing_key(channel)
        async with self._lock(key):
            if key not in self._bound:
                return
            self._bound.discard(key)  # messages still in flight are dropped
            queue, exchange = self._consuming()
            await queue.unbind(exchange, routing_key=key)

    async def subscribe_pattern(
        self, pattern: str, deliver: Callable[[BrokerMessage], None]
    ) -> None:
        """Deliver every message whose channel matches the glob ``pattern`` to ``deliver``,
        through a binding that matches at least those channels."""
        if self._patterns.add(pattern, deliver) and self._queue is not None:
            queue, exchange = self._consuming()
            await queue.bind(exchange, routing_key=binding_key(pattern))

    async def unsubscribe_pattern(
        self, pattern: str, deliver: Callable[[BrokerMessage], None]
    ) -> None:
        if not self._patterns.remove(pattern, deliver):
            return
        key = binding_key(pattern)
        if self._queue is not None and key not in self._bound:
            if not any(binding_key(other) == key for other in self._patterns):
                queue, exchange = self._consuming()
                await queue.unbind(exchange, routing_key=key)

    def derived_topic_lease(self, name: str, ttl_ms: int) -> Lease:
        """An exclusive queue named after the derived topic and this API's exchange."""
        queue = lease_queue_name(self.options.exchange, name)
        return ExclusiveQueueLease(self.options.connection_url, queue, name, ttl_ms)

    def derived_topic_feed(
        self, lease: Lease, patterns: Sequence[str], accepts: Callable[[str], bool]
    ) -> Feed | None:
        """None: RabbitMQ keeps no history here, so the owner reads live through
        :meth:`subscribe_pattern`, and a new owner misses what the old one had counted."""
        return None

    async def publish(self, channel: str, message: Any) -> None:
        if not isinstance(message, str):
            raise TypeError(f"messages are str, not {type(message).__name__}")
        if self._publishing is None:
            raise RuntimeError("the AMQP backend is not connected: call connect() first")
        body = aio_pika.Message(message.encode("utf-8"), content_encoding="utf-8")
        # With publisher confirms, this returns once the broker has taken the message.
        await self._publishing.publish(body, routing_key=self.options.routing_key(channel))

    async def ping(self) -> None:
        """Whether the connection is up now (health checks); it reconnects on its own."""
        connection = self._connection
        if connection is None or connection.is_closed or not connection.connected.is_set():
            raise ConnectionError("not connected to the AMQP broker")

    async def next_published(self) -> BrokerMessage:
        while True:
            message = await self._inbox.get()
            key = message.routing_key
            if key is None or key not in self._bound:
                continue
            try:
                text = message.body.decode("utf-8")
            except UnicodeDecodeError:
                logger.warning(
                    "Skipped a message of %d bytes with routing key %r: it is not UTF-8 text",
                    len(message.body),
                    key,
                )
                continue
            return BrokerMessage(channel=key, message=text)

    async def _deliver(self, message: AbstractIncomingMessage) -> None:
        if self._patterns and message.routing_key is not None:
            self._deliver_to_patterns(message.routing_key, message.body)
        self._inbox.put_nowait(message)

    def _deliver_to_patterns(self, channel: str, body: bytes) -> None:
        if not self._patterns.matching(channel):
            return  # brought by a binding broader than its pattern
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            logger.warning("Skipped a message on %r that is not UTF-8 text", channel)
            return
        self._patterns.deliver(channel, text)

    async def _declare_exchange(self, channel: AbstractChannel) -> AbstractExchange:
        return await channel.declare_exchange(
            self.options.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )

    def _consuming(self) -> tuple[AbstractQueue, AbstractExchange]:
        if self._queue is None or self._exchange_for_bindings is None:
            raise RuntimeError("the AMQP backend is not connected: call connect() first")
        return self._queue, self._exchange_for_bindings

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock


def binding_key(pattern: str) -> str:
    """The AMQP binding key that matches at least the channels of the glob ``pattern``.

    In a binding key ``*`` stands for exactly one dot-separated word and ``#`` for any number
    of them, while a glob's ``*`` crosses dots; so a word with any wildcard becomes ``#``.
    The binding may bring more than the glob takes: those messages are dropped here.
    """
    words = ["#" if any(c in word for c in "*?[") else word for word in pattern.split(".")]
    return ".".join(words)
