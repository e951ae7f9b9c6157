"""``MQTTBackend``: broadcaster's backend interface over one MQTT connection.

One client per process subscribes once per channel; every message the broker sends comes out of
``next_published()`` once. Messages are published with the URL's QoS (1 by default: the broker
acknowledged it before ``publish()`` returns) and not retained unless ``?retain=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from typing import Any

import aiomqtt
from broadcaster import BroadcastBackend
from fastapi_streaming.brokers.hookspecs import BrokerMessage

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

    def _connected(self) -> aiomqtt.Client:
        if self._client is None:
            raise RuntimeError("the MQTT backend is not connected: call connect() first")
        return self._client

    def _lock(self, topic: str) -> asyncio.Lock:
        lock = self._locks.get(topic)
        if lock is None:
            lock = self._locks[topic] = asyncio.Lock()
        return lock
