"""MQTTBackend against the real Mosquitto on 127.0.0.1:1883, and a private one for restarts."""

from __future__ import annotations

from collections.abc import Iterator

import aiomqtt
import pytest
from fastapi_streaming.testing import BackendConformance, BrokerControl, NativePublish
from fastapi_streaming.testing.private_brokers import private_mosquitto, session_broker
from fastapi_streaming.testing.processes import BrokerAt, PrivateBroker

from fastapi_streaming_mqtt import MQTTBackend

MOSQUITTO = "mqtt://127.0.0.1:1883"


def native_publisher(topic_prefix: str) -> NativePublish:
    """Publish as another MQTT client would: its own connection, topic levels with slashes."""

    async def publish(channel: str, payload: bytes) -> None:
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.publish(topic_prefix + channel.replace(".", "/"), payload, qos=1)

    return publish


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[PrivateBroker]:
    """A Mosquitto of this session's own, which the restart tests stop and kill."""
    with session_broker(private_mosquitto) as broker:
        yield broker


class TestMQTTBackend(BackendConformance):
    url = MOSQUITTO
    factory = MQTTBackend

    @pytest.fixture
    def native_publish(self) -> NativePublish:
        return native_publisher("")

    @pytest.fixture
    def broker_control(self, mosquitto: PrivateBroker) -> BrokerControl:
        return mosquitto.start_now()  # a no-op unless an earlier test left it down


class TestMQTTBackendAtQoS0UnderAPrefix(BackendConformance):
    url = f"{MOSQUITTO}/fastapi-streaming/conformance?qos=0"
    factory = MQTTBackend

    @pytest.fixture
    def native_publish(self) -> NativePublish:
        return native_publisher("fastapi-streaming/conformance/")

    @pytest.fixture
    def broker_control(self, mosquitto: PrivateBroker) -> BrokerControl:
        mosquitto.start_now()
        return BrokerAt(mosquitto, f"{mosquitto.url}/fastapi-streaming/conformance?qos=0")
