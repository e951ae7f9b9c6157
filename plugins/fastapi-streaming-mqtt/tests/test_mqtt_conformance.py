"""MQTTBackend against the real Mosquitto on 127.0.0.1:1883, and a private one for restarts."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from fastapi_streaming.testing import BackendConformance, BrokerControl, NativePublish
from fastapi_streaming.testing.processes import BrokerAt, PrivateBroker, free_port

from fastapi_streaming_mqtt import MQTTBackend

MOSQUITTO = "mqtt://127.0.0.1:1883"


def native_publisher(topic_prefix: str) -> NativePublish:
    """Publish as another MQTT client would: its own connection, topic levels with slashes."""

    async def publish(channel: str, payload: bytes) -> None:
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.publish(topic_prefix + channel.replace(".", "/"), payload, qos=1)

    return publish


@pytest.fixture(scope="session")
def private_mosquitto() -> Iterator[PrivateBroker]:
    """A Mosquitto of this session's own, which the restart tests stop and kill."""
    binary = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    if binary is None:
        pytest.skip("no mosquitto binary for the restart tests: apt-get install mosquitto")
    folder = Path(tempfile.mkdtemp(prefix="fastapi-streaming-mosquitto-"))
    port = free_port()
    config = folder / "mosquitto.conf"
    # No persistence: after a restart the broker knows no subscription, as after a crash.
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = PrivateBroker(
        "mosquitto",
        [binary, "-c", str(config)],
        port=port,
        url=f"mqtt://127.0.0.1:{port}",
        log_dir=folder,
    )
    try:
        yield broker.start_now()
    finally:
        broker.stop_now()
        shutil.rmtree(folder, ignore_errors=True)


class TestMQTTBackend(BackendConformance):
    url = MOSQUITTO
    factory = MQTTBackend

    @pytest.fixture
    def native_publish(self) -> NativePublish:
        return native_publisher("")

    @pytest.fixture
    def broker_control(self, private_mosquitto: PrivateBroker) -> BrokerControl:
        return private_mosquitto.start_now()  # a no-op unless an earlier test left it down


class TestMQTTBackendAtQoS0UnderAPrefix(BackendConformance):
    url = f"{MOSQUITTO}/fastapi-streaming/conformance?qos=0"
    factory = MQTTBackend

    @pytest.fixture
    def native_publish(self) -> NativePublish:
        return native_publisher("fastapi-streaming/conformance/")

    @pytest.fixture
    def broker_control(self, private_mosquitto: PrivateBroker) -> BrokerControl:
        private_mosquitto.start_now()
        return BrokerAt(
            private_mosquitto, f"{private_mosquitto.url}/fastapi-streaming/conformance?qos=0"
        )
