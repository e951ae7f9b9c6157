"""MQTTBackend against the real Mosquitto on 127.0.0.1:1883."""

from __future__ import annotations

import aiomqtt
import pytest
from fastapi_streaming.testing import BackendConformance, NativePublish

from fastapi_streaming_mqtt import MQTTBackend

MOSQUITTO = "mqtt://127.0.0.1:1883"


def native_publisher(topic_prefix: str) -> NativePublish:
    """Publish as another MQTT client would: its own connection, topic levels with slashes."""

    async def publish(channel: str, payload: bytes) -> None:
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.publish(topic_prefix + channel.replace(".", "/"), payload, qos=1)

    return publish


class TestMQTTBackend(BackendConformance):
    url = MOSQUITTO
    factory = MQTTBackend

    @pytest.fixture
    def native_publish(self) -> NativePublish:
        return native_publisher("")


class TestMQTTBackendAtQoS0UnderAPrefix(BackendConformance):
    url = f"{MOSQUITTO}/fastapi-streaming/conformance?qos=0"
    factory = MQTTBackend

    @pytest.fixture
    def native_publish(self) -> NativePublish:
        return native_publisher("fastapi-streaming/conformance/")
