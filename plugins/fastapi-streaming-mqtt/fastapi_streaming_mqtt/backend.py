"""``MQTTBackend``: broadcaster's backend interface over one MQTT connection.

One client per process subscribes once per channel; every message the broker sends comes out of
``next_published()`` once. Messages are published with the URL's QoS (1 by default: the broker
acknowledged it before ``publish()`` returns) and not retained unless ``?retain=true``.

Derived topics run here too: a pattern subscription (``clicks.*``) is one more subscription of
the same client (``clicks/#``), and each derived topic's owner is elected among the processes
through announcements on the broker (:mod:`.lease`). The broker keeps no history for it, so a
new owner starts from what is published after it took over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import aiomqtt
from broadcaster import BroadcastBackend
from fastapi_streaming.brokers.hookspecs import BrokerMessage
from fastapi_streaming.brokers.patterns import PatternListeners
from fastapi_streaming.processing.lease import Lease
from fastapi_streaming.processing.stream_feed import Feed

from fastapi_streaming_mqtt.lease import CandidateLease
from fastapi_streaming_mqtt.options import MQTTOptions

logger = logging.getLogger("fastapi_streaming.mqtt")


class MQTTBackend(BroadcastBackend):
    """Channels ``stocks.AAPL`` travel as MQTT topics ``<prefix>stocks/AAPL``."""

    def __init__(self, url: str) -> None:
        self.options = MQTTOptions.from_url(url)
        self._client: aiomqtt.Client | None = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        #: topic -> channel, for every topic whose messages are delivered.
        self._channels: dict[str, str] = {}
        #: topics the broker has acknowledged a subscription to.
        self._subscribed: set[str] = set()
        #: Glob pattern -> who gets its messages (derived topics' owners); kept across
        #: reconnections, and subscribed again by ``connect``.
        self._patterns = PatternListeners()
        self._locks: dict[str, asyncio.Lock] = {}

    async def connect(self) -> None:
        options = self.options
        client = aiomqtt.Client(
            options.hostname,
            options.port,
            username=options.username,
            password=options.password,
            identifier=options.client_id or f"fastapi-streaming-{uuid.uuid4().hex}",
            keepalive=options.keepalive,
            clean_session=True,
            tls_context=ssl.create_default_context() if options.tls else None,
            logger=logger,
        )
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(client)
        self._client, self._exit_stack = client, stack
        for pattern in self._patterns:
            await client.subscribe(self.topic_filter(pattern), qos=self.options.qos)

    async def disconnect(self) -> None:
        stack, self._exit_stack, self._client = self._exit_stack, None, None
        self._channels.clear()
        self._subscribed.clear()
        if stack is not None:
            await stack.aclose()
        # aiomqtt cancels its housekeeping task through call_soon_threadsafe: let that run, so
        # nothing of this connection is still scheduled once disconnect() has returned.
        await asyncio.sleep(0)

    async def subscribe(self, channel: str) -> None:
        topic = self.options.topic(channel)
        async with self._lock(topic):
            if topic in self._subscribed:
                return
            # Deliver from the moment the broker may send: a message can follow the SUBACK in
            # the very same read, before this coroutine resumes.
            self._channels[topic] = channel
            try:
                await self._connected().subscribe(topic, qos=self.options.qos)
            except BaseException:
                self._channels.pop(topic, None)
                raise
            self._subscribed.add(topic)

    async def unsubscribe(self, channel: str) -> None:
        topic = self.options.topic(channel)
        async with self._lock(topic):
            if topic not in self._subscribed:
                return
            self._subscribed.discard(topic)
            self._channels.pop(topic, None)  # messages still in flight are dropped
            await self._connected().unsubscribe(topic)

    def topic_filter(self, pattern: str) -> str:
        """The MQTT filter that matches at least the channels of the glob ``pattern``: its
        levels up to the first with a wildcard, then ``#`` (a glob's ``*`` crosses dots, which
        are levels here, and ``#`` must come last)."""
        levels: list[str] = []
        for word in pattern.split("."):
            if any(c in word for c in "*?["):
                levels.append("#")
                break
            levels.append(word)
        return self.options.prefix + "/".join(levels)

    async def subscribe_pattern(
        self, pattern: str, deliver: Callable[[BrokerMessage], None]
    ) -> None:
        """Deliver every message whose channel matches the glob ``pattern`` to ``deliver``.

        The filter shares the client with plain subscriptions; a message both match comes
        once (MQTT requires at least that, and Mosquitto sends no more), and goes both to the
        pattern's listeners and to ``next_published``."""
        if self._patterns.add(pattern, deliver) and self._client is not None:
            await self._client.subscribe(self.topic_filter(pattern), qos=self.options.qos)

    async def unsubscribe_pattern(
        self, pattern: str, deliver: Callable[[BrokerMessage], None]
    ) -> None:
        if not self._patterns.remove(pattern, deliver):
            return
        topic_filter = self.topic_filter(pattern)
        others = {self.topic_filter(other) for other in self._patterns}
        if self._client is not None and topic_filter not in self._subscribed | others:
            await self._client.unsubscribe(topic_filter)

    def derived_topic_lease(self, name: str, ttl_ms: int) -> Lease:
        """An election among the processes' candidates for ``name`` (see :mod:`.lease`)."""
        return CandidateLease(self.options, name, ttl_ms)

    def derived_topic_feed(
        self, lease: Lease, patterns: Sequence[str], accepts: Callable[[str], bool]
    ) -> Feed | None:
        """None: the broker keeps no history here, so the owner reads live through
        :meth:`subscribe_pattern`, and a new owner misses what the old one had counted."""
        return None

    async def publish(self, channel: str, message: Any) -> None:
        if not isinstance(message, str):
            raise TypeError(f"messages are str, not {type(message).__name__}")
        payload = message.encode("utf-8")
        limit = self.options.max_payload
        if len(payload) > limit:
            raise ValueError(
                f"a message of {len(payload)} bytes exceeds the MQTT payload size limit of "
                f"{limit} bytes (max_payload)"
            )
        await self._connected().publish(
            self.options.topic(channel), payload, qos=self.options.qos, retain=self.options.retain
        )

    async def next_published(self) -> BrokerMessage:
        client = self._connected()
        while True:
            message = await anext(client.messages)
            topic = message.topic.value
            if self._patterns:
                self._deliver_to_patterns(topic, message.payload)
            channel = self._channels.get(topic)
            if channel is None:
                continue  # left the channel while this message was on its way
            payload = message.payload
            if isinstance(payload, (bytes, bytearray)):
                try:
                    text = bytes(payload).decode("utf-8")
                except UnicodeDecodeError:
                    logger.warning(
                        "Skipped a message of %d bytes on MQTT topic %r: it is not UTF-8 text",
                        len(payload),
                        topic,
                    )
                    continue
            else:
                text = "" if payload is None else str(payload)
            return BrokerMessage(channel=channel, message=text)

    def _deliver_to_patterns(self, topic: str, payload: object) -> None:
        prefix = self.options.prefix
        if not topic.startswith(prefix) or not isinstance(payload, (bytes, bytearray)):
            return
        channel = topic[len(prefix) :].replace("/", ".")
        if not self._patterns.matching(channel):
            return  # brought by a filter broader than its pattern
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            logger.warning("Skipped a message on MQTT topic %r that is not UTF-8 text", topic)
            return
        self._patterns.deliver(channel, text)

    def _connected(self) -> aiomqtt.Client:
        if self._client is None:
            raise RuntimeError("the MQTT backend is not connected: call connect() first")
        return self._client

    def _lock(self, topic: str) -> asyncio.Lock:
        lock = self._locks.get(topic)
        if lock is None:
            lock = self._locks[topic] = asyncio.Lock()
        return lock
