"""The embedded broker hands events to listeners in the publisher's step, and still works as a
plain pull backend when nothing asks it to deliver."""

from __future__ import annotations

import asyncio

from broadcaster import Event as BrokerMessage

from fastapi_streaming.brokers.connection import BrokerConnection
from fastapi_streaming.brokers.memory import MemoryBackend


async def test_a_connection_gets_messages_before_publish_returns() -> None:
    connection = BrokerConnection(MemoryBackend("memory://"), url="memory://")
    await connection.connect()
    received: list[BrokerMessage] = []
    try:
        await connection.subscribe("prices", received.append)
        await connection.publish("prices", "one")
        # No listener task, no trip through the event loop: already there.
        assert [message.message for message in received] == ["one"]
        await connection.publish("orders", "nobody listens")
        assert len(received) == 1
        await connection.unsubscribe("prices", received.append)
        await connection.publish("prices", "two")
        assert len(received) == 1
    finally:
        await connection.disconnect()


async def test_without_a_connection_it_queues_for_next_published() -> None:
    backend = MemoryBackend("memory://")
    await backend.connect()
    await backend.subscribe("prices")
    await backend.publish("elsewhere", "dropped: not subscribed")
    await backend.publish("prices", "kept")
    message = await asyncio.wait_for(backend.next_published(), 1)
    assert (message.channel, message.message) == ("prices", "kept")
