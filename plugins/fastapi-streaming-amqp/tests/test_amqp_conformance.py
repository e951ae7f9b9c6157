"""AMQPBackend against the real RabbitMQ on 127.0.0.1:5672 (guest/guest)."""

from __future__ import annotations

import aio_pika
import pytest
from fastapi_streaming.testing import BackendConformance, NativePublish

from fastapi_streaming_amqp import AMQPBackend

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"


class TestAMQPBackend(BackendConformance):
    url = RABBITMQ
    factory = AMQPBackend

    @pytest.fixture
    def native_publish(self) -> NativePublish:
        """Publish as another AMQP application would, to the same exchange."""

        async def publish(channel: str, payload: bytes) -> None:
            connection = await aio_pika.connect(RABBITMQ)
            async with connection:
                amqp_channel = await connection.channel()
                exchange = await amqp_channel.get_exchange("fastapi_streaming")
                await exchange.publish(aio_pika.Message(payload), routing_key=channel)

        return publish
