"""Derived topics on RabbitMQ: the processing conformance suite, the pattern bindings, and the
lease that an exclusive queue is.

RabbitMQ keeps no history for a derived topic's owner, so a new owner starts from what is
published after it took over: the suite's failover test is the one expected failure. Each test
publishes to an exchange of its own, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import ClassVar

import aio_pika
import pytest
import pytest_asyncio
from fastapi_streaming.brokers.hookspecs import BrokerMessage
from fastapi_streaming.testing.processing_conformance import ProcessingConformance

from fastapi_streaming_amqp import AMQPBackend
from fastapi_streaming_amqp.backend import binding_key
from fastapi_streaming_amqp.lease import ExclusiveQueueLease, lease_queue_name

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"


async def delete_exchange(exchange: str) -> None:
    connection = await aio_pika.connect(RABBITMQ)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(exchange)


@pytest_asyncio.fixture
async def exchange() -> AsyncIterator[str]:
    name = f"processing_{uuid.uuid4().hex[:12]}"
    yield name
    await delete_exchange(name)


class TestEmbeddedOnRabbitMQ(ProcessingConformance):
    unsupported: ClassVar[dict[str, str]] = {
        "test_failover_neither_loses_nor_double_counts": (
            "RabbitMQ keeps no history for the owner: a new owner misses what the old one had "
            "folded in"
        ),
    }

    @pytest_asyncio.fixture
    async def broker_url(self, exchange: str) -> AsyncIterator[str]:  # type: ignore[override]
        yield f"{RABBITMQ}?exchange={exchange}"


@pytest.mark.parametrize(
    ("pattern", "key"),
    [
        ("clicks.*", "clicks.#"),
        ("stocks.*.candles", "stocks.#.candles"),
        ("clicks.home", "clicks.home"),
        ("a-*.x", "#.x"),
    ],
)
def test_a_glob_becomes_a_binding_that_matches_at_least_its_channels(
    pattern: str, key: str
) -> None:
    assert binding_key(pattern) == key


async def test_a_pattern_subscription_matches_the_glob_and_survives_a_reconnection(
    exchange: str,
) -> None:
    """Owners read their sources through it; the broker connection reconnects a backend by
    disconnect() and connect(), after which the owner must still be fed."""
    backend = AMQPBackend(f"{RABBITMQ}?exchange={exchange}")
    got: list[tuple[str, str]] = []

    def deliver(message: BrokerMessage) -> None:
        got.append((message.channel, message.message))

    await backend.connect()
    try:
        await backend.subscribe_pattern("clicks.*", deliver)
        await backend.subscribe("clicks.home")  # a plain subscriber of one of them, too
        await backend.disconnect()
        await backend.connect()
        await backend.subscribe("clicks.home")
        for channel in ("clicks.home", "clicks.a.b", "views.home", "clicksx.home"):
            await backend.publish(channel, channel)
        plain = await asyncio.wait_for(backend.next_published(), 5)
        assert (plain.channel, plain.message) == ("clicks.home", "clicks.home")
        for _ in range(100):
            if len(got) >= 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # nothing else comes
        assert got == [("clicks.home", "clicks.home"), ("clicks.a.b", "clicks.a.b")]
        await backend.unsubscribe_pattern("clicks.*", deliver)
        await backend.publish("clicks.a.b", "after")
        await asyncio.sleep(0.3)
        assert len(got) == 2
    finally:
        await backend.disconnect()


def test_lease_queues_are_named_after_the_exchange_and_the_topic() -> None:
    name = lease_queue_name("x", "/clicks/{page}/per-second")
    assert name.startswith("fastapi_streaming.lease.x._clicks__page__per-second.")
    assert name != lease_queue_name("x", "/clicks/{page}/per_second")
    assert lease_queue_name("y", "/clicks/{page}/per-second") != name
    assert len(lease_queue_name("x", "t" * 300).encode()) <= 255


async def test_one_process_holds_the_lease_until_it_lets_go(exchange: str) -> None:
    backend = AMQPBackend(f"{RABBITMQ}?exchange={exchange}")
    first = backend.derived_topic_lease("t.{x}", 1000)
    second = backend.derived_topic_lease("t.{x}", 1000)
    try:
        assert await first.acquire()
        assert not await second.acquire()
        assert await first.acquire()  # taking it again keeps it
        assert await first.renew()
        assert not await second.renew()
        await first.release()
        assert await second.acquire()  # at once: the queue went with the connection
        assert not await first.renew()
        assert not await first.acquire()
    finally:
        await first.close()
        await second.close()


async def test_a_killed_owner_s_lease_is_taken_over_within_seconds(exchange: str) -> None:
    """The owner is a process of its own, SIGKILLed: its socket closes with it, RabbitMQ
    deletes the exclusive queue, and the next ``acquire`` elsewhere succeeds."""
    name = lease_queue_name(exchange, "t.{x}")
    holder = subprocess.Popen(  # noqa: ASYNC220 (started once; stopped by its PID)
        [sys.executable, "-c", HOLDER, name],
        stdout=subprocess.PIPE,
        text=True,
    )
    other = ExclusiveQueueLease(RABBITMQ, name, "t.{x}", 1000)
    try:
        assert holder.stdout is not None
        assert await asyncio.to_thread(holder.stdout.readline) == "held\n"
        assert not await other.acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        started = time.monotonic()
        while not await other.acquire():
            assert time.monotonic() - started < 5, "the dead owner's queue was not deleted"
            await asyncio.sleep(0.1)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
        await other.close()


#: Holds the lease named on its command line until killed.
HOLDER = """
import asyncio, sys
from fastapi_streaming_amqp.lease import ExclusiveQueueLease

async def main():
    lease = ExclusiveQueueLease("amqp://guest:guest@127.0.0.1:5672/", sys.argv[1], "t", 1000)
    assert await lease.acquire()
    print("held", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_an_owner_whose_connection_is_closed_no_longer_holds_the_lease(
    exchange: str,
) -> None:
    """A connection RabbitMQ closes (here by its operator, as a lost network or missed
    heartbeats would) takes the queue with it: ``renew`` says so, and another process takes
    the lease."""
    name = lease_queue_name(exchange, "t.{x}")
    owner = ExclusiveQueueLease(RABBITMQ, name, f"closed-{exchange}", 1000)
    other = ExclusiveQueueLease(RABBITMQ, name, "t.{x}", 1000)
    try:
        assert await owner.acquire()
        await asyncio.to_thread(
            close_connection_named, f"fastapi-streaming lease closed-{exchange}"
        )
        started = time.monotonic()
        while await owner.renew():
            assert time.monotonic() - started < 5, "the owner did not notice"
            await asyncio.sleep(0.05)
        assert await other.acquire()
    finally:
        await owner.close()
        await other.close()


def close_connection_named(name: str) -> None:
    listed = subprocess.run(
        ["rabbitmqctl", "-s", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pids = [line.split("\t")[0] for line in listed.splitlines() if f'"{name}"' in line]
    assert len(pids) == 1, listed
    subprocess.run(
        ["rabbitmqctl", "-s", "close_connection", pids[0], "closed by the test"],
        capture_output=True,
        check=True,
    )
