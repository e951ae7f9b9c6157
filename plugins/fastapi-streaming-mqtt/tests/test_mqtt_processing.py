"""Derived topics on MQTT: the processing conformance suite, the pattern subscriptions, and
the election of each derived topic's owner among the processes' candidates.

The broker keeps no history for a derived topic's owner, so a new owner starts from what is
published after it took over: the suite's failover test is the one expected failure. Each
test has a topic prefix of its own.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from typing import ClassVar

import pytest
from fastapi_streaming.brokers.hookspecs import BrokerMessage
from fastapi_streaming.testing.processing_conformance import ProcessingConformance

from fastapi_streaming_mqtt import MQTTBackend
from fastapi_streaming_mqtt.lease import CandidateLease, lease_topic
from fastapi_streaming_mqtt.options import MQTTOptions

MOSQUITTO = "mqtt://127.0.0.1:1883"


@pytest.fixture
def prefixed_url() -> str:
    return f"{MOSQUITTO}/processing_{uuid.uuid4().hex[:12]}"


class TestEmbeddedOnMQTT(ProcessingConformance):
    unsupported: ClassVar[dict[str, str]] = {
        "test_failover_neither_loses_nor_double_counts": (
            "the MQTT broker keeps no history for the owner: a new owner misses what the old "
            "one had folded in"
        ),
    }

    @pytest.fixture
    def broker_url(self, prefixed_url: str) -> str:
        return prefixed_url


@pytest.mark.parametrize(
    ("pattern", "topic_filter"),
    [
        ("clicks.*", "p/clicks/#"),
        ("stocks.*.candles", "p/stocks/#"),
        ("clicks.home", "p/clicks/home"),
        ("a-*.x", "p/#"),
    ],
)
def test_a_glob_becomes_a_filter_that_matches_at_least_its_channels(
    pattern: str, topic_filter: str
) -> None:
    assert MQTTBackend(f"{MOSQUITTO}/p").topic_filter(pattern) == topic_filter


async def test_a_pattern_subscription_matches_the_glob_and_survives_a_reconnection(
    prefixed_url: str,
) -> None:
    """Owners read their sources through it; the broker connection reconnects a backend by
    disconnect() and connect(), after which the owner must still be fed."""
    backend = MQTTBackend(prefixed_url)
    got: list[tuple[str, str]] = []

    def deliver(message: BrokerMessage) -> None:
        got.append((message.channel, message.message))

    await backend.connect()
    reader: asyncio.Task[BrokerMessage] | None = None
    try:
        await backend.subscribe_pattern("clicks.*", deliver)
        await backend.disconnect()
        await backend.connect()
        await backend.subscribe("clicks.home")  # a plain subscriber of one of them, too
        reader = asyncio.create_task(backend.next_published())  # also feeds the patterns
        for channel in ("clicks.home", "clicks.a.b", "views.home", "clicksx.home"):
            await backend.publish(channel, channel)
        plain = await asyncio.wait_for(reader, 5)
        assert (plain.channel, plain.message) == ("clicks.home", "clicks.home")
        reader = asyncio.create_task(backend.next_published())  # reads on: nothing plain
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
        if reader is not None:
            reader.cancel()
        await backend.disconnect()


def test_lease_topics_are_one_level_named_after_the_topic() -> None:
    options = MQTTOptions.from_url(f"{MOSQUITTO}/p")
    topic = lease_topic(options, "/clicks/{page}/per-second")
    assert topic.startswith("p/fastapi-streaming/leases/_clicks__page__per-second.")
    assert topic.count("/") == 3
    assert topic != lease_topic(options, "/clicks/{page}/per_second")


async def held_within(lease: CandidateLease, seconds: float) -> bool:
    """Ask as the runner does (every third of a lifetime) until held, or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not await lease.acquire():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(lease.ttl_ms / 3000)
    return True


async def test_the_oldest_candidate_holds_the_lease_until_it_lets_go(prefixed_url: str) -> None:
    options = MQTTOptions.from_url(prefixed_url)
    first, second, third = (CandidateLease(options, "t.{x}", 1500) for _ in range(3))
    try:
        assert await held_within(first, 5)
        assert not await second.acquire()
        assert not await third.acquire()
        await asyncio.sleep(2)  # the later candidates have been heard, and settled
        assert await first.renew()
        assert not await second.acquire()  # a later candidate never outranks the holder
        assert not await third.acquire()
        await first.release()
        started = time.monotonic()
        assert await held_within(second, 5)  # the next oldest
        assert time.monotonic() - started < 2.5
        assert not await third.acquire()
        assert not await first.renew()
    finally:
        for lease in (first, second, third):
            await lease.close()


async def test_a_killed_owner_is_replaced_within_seconds(prefixed_url: str) -> None:
    """The owner is a process of its own, SIGKILLed: the broker publishes its Will (an empty
    announcement) as its socket closes, and the next oldest candidate takes over."""
    options = MQTTOptions.from_url(prefixed_url)
    holder = subprocess.Popen(  # noqa: ASYNC220 (started once; stopped by its PID)
        [sys.executable, "-c", HOLDER, prefixed_url],
        stdout=subprocess.PIPE,
        text=True,
    )
    other = CandidateLease(options, "t.{x}", 1500)
    try:
        assert holder.stdout is not None
        assert await asyncio.to_thread(holder.stdout.readline) == "held\n"
        assert not await held_within(other, 2)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        started = time.monotonic()
        assert await held_within(other, 5)
        assert time.monotonic() - started < 3  # the Will, then the settle time
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
        await other.close()


#: Holds the lease on the broker URL of its command line until killed.
HOLDER = """
import asyncio, sys, time
from fastapi_streaming_mqtt.lease import CandidateLease
from fastapi_streaming_mqtt.options import MQTTOptions

async def main():
    lease = CandidateLease(MQTTOptions.from_url(sys.argv[1]), "t.{x}", 1500)
    while not await lease.acquire():
        await asyncio.sleep(0.5)
    print("held", flush=True)
    while await lease.renew():
        await asyncio.sleep(0.5)

asyncio.run(main())
"""
