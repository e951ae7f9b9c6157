"""URL options of the AMQP backend, checked against the real RabbitMQ where they matter."""

from __future__ import annotations

import asyncio
import uuid
from importlib.metadata import entry_points

import aio_pika
import pluggy
import pytest
from fastapi_streaming.brokers import hookspecs

from fastapi_streaming_amqp import AMQPBackend, AMQPOptions

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"


def test_defaults_and_passthrough_options() -> None:
    options = AMQPOptions.from_url("amqps://u:p@rabbit.example/prod?heartbeat=30&exchange=orders")
    assert options.exchange == "orders"
    assert options.connection_url == "amqps://u:p@rabbit.example/prod?heartbeat=30"
    assert AMQPOptions.from_url(RABBITMQ).exchange == "fastapi_streaming"


@pytest.mark.parametrize("url", ["mqtt://h", "amqp://h?exchange=", "amqp://h?exchange=amq.topic"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        AMQPOptions.from_url(url)


@pytest.mark.parametrize("channel", ["", "stocks.*", "stocks.#", "x" * 256])
def test_channels_amqp_would_misread_are_refused(channel: str) -> None:
    with pytest.raises(ValueError):
        AMQPOptions.routing_key(channel)


def test_the_entry_point_registers_both_schemes() -> None:
    (entry_point,) = [ep for ep in entry_points(group="fastapi_streaming") if ep.name == "amqp"]
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(entry_point.load())
    (backends,) = manager.hook.fastapi_streaming_backends()
    assert backends == {"amqp": AMQPBackend, "amqps": AMQPBackend}


async def test_the_exchange_option_routes_through_that_durable_topic_exchange() -> None:
    exchange_name = f"conformance_{uuid.uuid4().hex[:12]}"
    backend = AMQPBackend(f"{RABBITMQ}?exchange={exchange_name}")
    await backend.connect()
    connection = await aio_pika.connect(RABBITMQ)
    try:
        await backend.subscribe("orders.created")
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            exchange_name, aio_pika.ExchangeType.TOPIC, durable=True, passive=True
        )
        await exchange.publish(aio_pika.Message(b'{"id": 1}'), routing_key="orders.created")
        event = await asyncio.wait_for(backend.next_published(), timeout=10)
        assert (event.channel, event.message) == ("orders.created", '{"id": 1}')
    finally:
        await backend.disconnect()
        channel = await connection.channel()
        await channel.exchange_delete(exchange_name)
        await connection.close()


async def test_each_process_has_its_own_exclusive_queue_gone_on_disconnect() -> None:
    backend = AMQPBackend(RABBITMQ)
    await backend.connect()
    queue = backend._queue  # the one private look: which queue the broker must delete
    assert queue is not None and queue.exclusive and queue.auto_delete
    name = queue.name
    await backend.disconnect()
    connection = await aio_pika.connect(RABBITMQ)
    try:
        channel = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await channel.declare_queue(name, passive=True)
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("query", "expected"), [("", 1.0), ("?reconnect_interval=3", 3.0)], ids=["default", "url"]
)
async def test_reconnection_is_attempted_every_second_unless_the_url_says(
    query: str, expected: float
) -> None:
    """aio-pika's own 5 s made deliveries resume up to 5 s after RabbitMQ was back."""
    backend = AMQPBackend(RABBITMQ + query)
    await backend.connect()
    try:
        assert backend._connection is not None
        assert backend._connection.reconnect_interval == expected
    finally:
        await backend.disconnect()
