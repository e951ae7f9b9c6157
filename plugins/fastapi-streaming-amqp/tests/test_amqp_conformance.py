"""AMQPBackend against the real RabbitMQ on 127.0.0.1:5672 (guest/guest).

The restart tests stop and kill a RabbitMQ node of the session's own instead: its own node
name, AMQP and distribution ports, data and log folders, Erlang cookie (in its own home
folder) and epmd, so nothing of the shared node is touched. A node takes seconds to boot, so
one serves the whole session.
"""

from __future__ import annotations

from collections.abc import Iterator

import aio_pika
import pytest
from fastapi_streaming.testing import BackendConformance, BrokerControl, NativePublish
from fastapi_streaming.testing.private_brokers import private_rabbitmq, session_broker
from fastapi_streaming.testing.processes import PrivateBroker

from fastapi_streaming_amqp import AMQPBackend

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture(scope="session")
def rabbitmq_node() -> Iterator[PrivateBroker]:
    """A RabbitMQ node of this session's own: it takes seconds to boot, so it is started once."""
    with session_broker(private_rabbitmq) as node:
        yield node


class TestAMQPBackend(BackendConformance):
    url = RABBITMQ
    factory = AMQPBackend

    @pytest.fixture
    def broker_control(self, rabbitmq_node: PrivateBroker) -> BrokerControl:
        return rabbitmq_node.start_now()  # a no-op unless an earlier test left it down

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
