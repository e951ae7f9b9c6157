import aiomqtt
import pytest
from fastapi_streaming_mqtt import MQTTBackend

from fastapi_streaming.testing import BackendConformance, NativePublish


class TestMQTTBackend(BackendConformance):
    url = "mqtt://127.0.0.1:1883"
    factory = MQTTBackend

    @pytest.fixture
    def native_publish(self) -> NativePublish:
        async def publish(channel: str, payload: bytes) -> None:
            async with aiomqtt.Client("127.0.0.1", 1883) as client:
                await client.publish(channel.replace(".", "/"), payload, qos=1)

        return publish
