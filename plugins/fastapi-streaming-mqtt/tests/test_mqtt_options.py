"""The URL options of the MQTT backend, checked against the real Mosquitto where they matter."""

from __future__ import annotations

import asyncio
import uuid
from importlib.metadata import entry_points

import aiomqtt
import pluggy
import pytest
from fastapi_streaming.brokers import hookspecs

from fastapi_streaming_mqtt import MQTTBackend, MQTTOptions


def test_defaults() -> None:
    options = MQTTOptions.from_url("mqtt://127.0.0.1")
    assert (options.port, options.qos, options.retain, options.prefix, options.tls) == (
        1883,
        1,
        False,
        "",
        False,
    )


def test_url_options() -> None:
    options = MQTTOptions.from_url(
        "mqtts://svc%40plant:s%2Fcret@broker.local/plant/line%201/?qos=2&retain=true&client_id=w1"
    )
    assert options.tls and options.port == 8883
    assert (options.username, options.password) == ("svc@plant", "s/cret")
    assert options.prefix == "plant/line 1/"
    assert (options.qos, options.retain, options.client_id) == (2, True, "w1")
    assert options.topic("stocks.AAPL") == "plant/line 1/stocks/AAPL"


@pytest.mark.parametrize(
    "url",
    [
        "mqtt://h?qos=3",
        "mqtt://h?retain=maybe",
        "mqtt://h?colour=blue",
        "mqtt://h/a/+/b",
        "amqp://h",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        MQTTOptions.from_url(url)


@pytest.mark.parametrize("channel", ["", "stocks/AAPL", "stocks.+", "stocks.#"])
def test_channels_mqtt_would_misread_are_refused(channel: str) -> None:
    with pytest.raises(ValueError):
        MQTTOptions.from_url("mqtt://h").topic(channel)


def test_the_entry_point_registers_both_schemes() -> None:
    (entry_point,) = [ep for ep in entry_points(group="fastapi_streaming") if ep.name == "mqtt"]
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(entry_point.load())
    backends: dict[str, object] = {}
    for provided in manager.hook.fastapi_streaming_backends():
        backends.update(provided)
    assert backends["mqtt"] is MQTTBackend and backends["mqtts"] is MQTTBackend


async def _first_message_after_subscribing(topic: str) -> bytes | None:
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.subscribe(topic, qos=1)
        try:
            message = await asyncio.wait_for(anext(client.messages), timeout=1.0)
        except asyncio.TimeoutError:
            return None
        payload = message.payload
        assert isinstance(payload, bytes)
        return payload


async def _publish_once(url: str, channel: str, message: str) -> None:
    backend = MQTTBackend(url)
    await backend.connect()
    try:
        await backend.publish(channel, message)
    finally:
        await backend.disconnect()


async def test_messages_are_not_retained_by_default() -> None:
    channel = f"retain{uuid.uuid4().hex[:12]}.status"
    await _publish_once("mqtt://127.0.0.1:1883", channel, "not kept")
    assert await _first_message_after_subscribing(channel.replace(".", "/")) is None


async def test_retain_true_keeps_the_last_message_for_late_subscribers() -> None:
    channel = f"retain{uuid.uuid4().hex[:12]}.status"
    topic = channel.replace(".", "/")
    try:
        await _publish_once("mqtt://127.0.0.1:1883?retain=true", channel, "kept")
        assert await _first_message_after_subscribing(topic) == b"kept"
    finally:
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.publish(topic, b"", qos=1, retain=True)  # clears the retained message


async def test_a_message_over_max_payload_is_refused_with_the_limit() -> None:
    backend = MQTTBackend("mqtt://127.0.0.1:1883?max_payload=1000")
    await backend.connect()
    try:
        with pytest.raises(ValueError, match="1000 bytes"):
            await backend.publish("big", "x" * 1001)
    finally:
        await backend.disconnect()
