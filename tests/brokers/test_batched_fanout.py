"""Events published together reach each client together, whatever the broker.

A client's writer wakes once per batch of events and writes the batch in one go; on a broker
that spreads events published together over many reads, every event would cost every client a
wake-up and a write of its own, and the server's CPU per delivered event grows with that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from fastapi_streaming import StreamingAPI, fanout
from fastapi_streaming.events import EncodedEvent
from fastapi_streaming.fanout import LINGER_TURNS, ClientQueue
from fastapi_streaming.runtime import StreamingRuntime
from fastapi_streaming.topics import OverflowPolicy
from tests.support.tansu import TansuProcess
from tests.support.turns import counting_turns

#: Fewer than the fan-out hands the loop to the writers after, so one batch is possible.
BURST = 40
CLIENTS = 3


async def batches_of_a_burst(broker_url: str) -> list[list[int]]:
    """Publish BURST events at once; return, per client, the size of every batch it took."""
    streaming = StreamingAPI(title="batches", version="1", broker=broker_url)

    @streaming.subscribe("/batch/{room}")
    async def relay(event: dict[str, Any], room: str) -> dict[str, Any]:
        return event

    address = f"/batch/{uuid.uuid4().hex}"
    taken: list[list[int]] = [[] for _ in range(CLIENTS)]

    async def consume(queue: ClientQueue, sizes: list[int]) -> None:
        while sum(sizes) < BURST:
            if not queue.ready:
                await queue.waiter()
            batch = queue.take()
            if batch:
                sizes.append(len(batch))

    async with streaming.running() as runtime:
        queues = [ClientQueue(1000) for _ in range(CLIENTS)]
        for queue in queues:
            await runtime.subscribe(queue, address)
        # A first event warms the connections up: the burst measures the steady state.
        await runtime.emit(address, {"n": -1})
        for queue in queues:
            while not queue.items:
                await asyncio.wait_for(queue.wait(), 10)
            queue.take()
        consumers = [
            asyncio.create_task(consume(queue, sizes))
            for queue, sizes in zip(queues, taken, strict=True)
        ]
        await asyncio.gather(*(runtime.emit(address, {"n": n}) for n in range(BURST)))
        await asyncio.wait_for(asyncio.gather(*consumers), 20)
    return taken


@pytest.mark.redis
async def test_a_burst_on_redis_reaches_every_client_in_one_batch() -> None:
    taken = await batches_of_a_burst("redis://127.0.0.1:6379")

    assert taken == [[BURST]] * CLIENTS


async def test_a_burst_on_memory_reaches_every_client_in_one_batch() -> None:
    taken = await batches_of_a_burst("memory://")

    assert taken == [[BURST]] * CLIENTS


@pytest.mark.redis
async def test_a_burst_on_redis_streams_reaches_every_client_in_few_batches() -> None:
    """XREAD returns what the stream holds: a burst read mid-way comes in at most two reads."""
    taken = await batches_of_a_burst("redis-stream://127.0.0.1:6379")

    assert all(sum(sizes) == BURST and len(sizes) <= 2 for sizes in taken), taken


@pytest.mark.kafka
async def test_a_burst_on_kafka_reaches_every_client_in_few_batches(
    tansu_broker: TansuProcess,
) -> None:
    taken = await batches_of_a_burst(tansu_broker.url)

    assert all(sum(sizes) == BURST and len(sizes) <= 3 for sizes in taken), taken


async def test_events_of_consecutive_turns_reach_a_client_in_one_write() -> None:
    """A pub/sub broker hands over a few events per turn of the event loop, every turn: the
    fan-out waits one turn after the first, so those of the next turn join the same batch."""
    streaming = StreamingAPI(title="turns", version="1", broker="memory://")

    @streaming.subscribe("/turns/{room}")
    async def relay(event: dict[str, Any], room: str) -> dict[str, Any]:
        return event

    address = f"/turns/{uuid.uuid4().hex}"
    async with streaming.running() as runtime:
        queue = ClientQueue(1000)
        await runtime.subscribe(queue, address)
        sizes: list[int] = []
        writer = asyncio.create_task(consume(queue, sizes, 2))  # as a transport's writer does
        await asyncio.sleep(0)
        await runtime.emit(address, {"n": 0})
        await asyncio.sleep(0)  # the next turn: the fan-out has woken for the first event
        await runtime.emit(address, {"n": 1})
        await asyncio.wait_for(writer, 10)
        assert sizes == [2]


async def consume(queue: ClientQueue, sizes: list[int], events: int) -> None:
    while sum(sizes) < events:
        if not queue.ready:
            await queue.waiter()
        batch = queue.take()
        if batch:
            sizes.append(len(batch))


def relaying_api(broker_url: str = "memory://") -> tuple[StreamingAPI, str]:
    """An API relaying ``/linger/{room}``, and an address of it of its own."""
    streaming = StreamingAPI(title="linger", version="1", broker=broker_url)

    @streaming.subscribe("/linger/{room}")
    async def relay(event: dict[str, Any], room: str) -> dict[str, Any]:
        return event

    return streaming, f"/linger/{uuid.uuid4().hex}"


@dataclass
class OneClient:
    """A running API relaying ``address`` to one client, whose writer (``writer``) takes the
    batches as a transport's does and records their sizes (``sizes``)."""

    runtime: StreamingRuntime
    address: str
    channel: str
    sizes: list[int]
    writer: asyncio.Task[None]

    async def emit(self, n: int) -> None:
        await self.runtime.emit(self.address, {"n": n})

    def own_publish(self, change: int) -> None:
        """A publish of this process to the channel leaves (1) or comes back (-1), as
        ``BrokerConnection.publish`` counts it around the broker's call."""
        self.runtime.broker.publishing[self.channel] += change


@contextlib.asynccontextmanager
async def one_client(events: int) -> AsyncIterator[OneClient]:
    """``memory://`` relaying a fresh address to one client that stops after ``events``."""
    streaming, address = relaying_api()
    async with streaming.running() as runtime:
        queue = ClientQueue(1000)
        await runtime.subscribe(queue, address)
        sizes: list[int] = []
        writer = asyncio.create_task(consume(queue, sizes, events))
        await asyncio.sleep(0)
        channel = runtime.fanout.streams[address].channel
        yield OneClient(runtime, address, channel, sizes, writer)


async def test_events_of_several_consecutive_turns_reach_a_client_in_one_write() -> None:
    """Publishers answered one by one on a busy loop bring an event every turn or so: while
    each turn brings more, the fan-out waits a few turns more, and the client gets them in one
    write."""
    async with one_client(4) as client:
        for n in range(4):
            await client.emit(n)
            await asyncio.sleep(0)
        await asyncio.wait_for(client.writer, 10)
        assert client.sizes == [4]


async def test_a_stream_on_every_turn_is_gathered_for_longer_than_the_turns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a busy loop a few turns are over before the broker's next read: while every turn
    brings more, the fan-out waits by time as well, and the client gets it all in one write."""
    monkeypatch.setattr(fanout, "LINGER_SECONDS", 60.0)  # no machine is this slow
    async with one_client(5 * LINGER_TURNS) as client:
        for n in range(5 * LINGER_TURNS):
            await client.emit(n)
            await asyncio.sleep(0)
        await asyncio.wait_for(client.writer, 10)
        assert client.sizes == [5 * LINGER_TURNS]


async def test_a_stream_that_never_pauses_still_goes_out() -> None:
    """The wait is bounded: an event on every turn does not hold the clients back for ever.
    After ``LINGER_SECONDS`` (or a few turns, if turns are slower) the fan-out hands out what
    it has, and goes on gathering."""
    streaming, address = relaying_api()
    async with streaming.running() as runtime:
        queue = ClientQueue(100_000)
        await runtime.subscribe(queue, address)
        sizes: list[int] = []
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + 10 * fanout.LINGER_SECONDS
        emitted = 0
        while loop.time() < stop_at:
            await runtime.emit(address, {"n": emitted})
            emitted += 1
            await asyncio.sleep(0)
            batch = queue.take()
            if batch:
                sizes.append(len(batch))
        assert len(sizes) >= 2, "events that keep coming were held back until they stopped"
        assert all(size < emitted for size in sizes)


async def test_an_event_of_its_own_waits_for_a_publish_still_on_its_way() -> None:
    """On a networked broker this process's publishes come back through its subscription a
    round trip later: while one to the channel is on its way, the fan-out gathers, so the
    event it brings joins the same write."""
    async with one_client(2) as client:
        client.own_publish(+1)
        await client.emit(0)
        for _ in range(3):  # a quiet turn, then two more: a round trip on a busy loop
            await asyncio.sleep(0)
        client.own_publish(-1)
        await client.emit(1)
        await asyncio.wait_for(client.writer, 10)
        assert client.sizes == [2]


async def test_a_publish_on_its_way_is_waited_for_longer_than_the_turns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a busy loop a round trip to the broker outlasts the turns the fan-out counts: it
    waits for its own publish by time, so the event still joins the same write."""
    monkeypatch.setattr(fanout, "LINGER_SECONDS", 60.0)  # no machine is this slow
    async with one_client(2) as client:
        client.own_publish(+1)
        await client.emit(0)
        for _ in range(5 * LINGER_TURNS):
            await asyncio.sleep(0)
        assert client.sizes == []
        client.own_publish(-1)
        await client.emit(1)
        await asyncio.wait_for(client.writer, 10)
        assert client.sizes == [2]


async def test_a_publish_that_does_not_come_back_holds_events_only_briefly() -> None:
    """A broker that never acknowledges must not hold the channel's events: after
    ``LINGER_SECONDS`` the fan-out hands them out anyway."""
    async with one_client(1) as client:
        client.own_publish(+1)  # and never back
        loop = asyncio.get_running_loop()
        started = loop.time()
        await client.emit(0)
        await asyncio.wait_for(client.writer, 10)
        assert client.sizes == [1]
        assert loop.time() - started >= fanout.LINGER_SECONDS
        client.own_publish(-1)


async def test_an_isolated_event_waits_one_turn_only() -> None:
    """Nothing coming after it, nothing of this process on its way: the event is handed out
    after the fan-out's one turn, so an idle server adds no latency. Four turns in all: the
    fan-out wakes, waits its turn, hands the event over, and the client's writer wakes."""
    streaming, address = relaying_api()
    async with streaming.running() as runtime:
        queue = ClientQueue(1000)
        await runtime.subscribe(queue, address)
        async with counting_turns() as counter:
            await asyncio.sleep(0)
            start = counter.turns
            await runtime.emit(address, {"n": 0})
            await asyncio.wait_for(queue.waiter(), 5)
            assert counter.turns - start <= 4


@pytest.mark.redis
async def test_publishes_on_their_way_to_the_broker_are_counted_per_channel() -> None:
    streaming, address = relaying_api("redis://127.0.0.1:6379")
    async with streaming.running() as runtime:
        await runtime.subscribe(ClientQueue(1000), address)
        channel = runtime.fanout.streams[address].channel
        publish = asyncio.create_task(runtime.emit(address, {"n": 0}))
        for _ in range(100):  # the publish task starts, and reaches the broker connection
            if channel in runtime.broker.publishing:
                break
            await asyncio.sleep(0)
        assert runtime.broker.publishing[channel] == 1
        await publish
        assert channel not in runtime.broker.publishing


class CountingQueue(ClientQueue):
    """A client queue that counts how the fan-out hands it events: a call per event, or a
    call per batch."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.calls: list[int] = []

    def put(self, item: EncodedEvent, policy: OverflowPolicy) -> None:
        self.calls.append(1)
        super().put(item, policy)

    def put_many(self, items: list[EncodedEvent], policy: OverflowPolicy) -> None:
        self.calls.append(len(items))
        super().put_many(items, policy)


async def test_events_that_arrived_together_reach_each_client_in_one_call() -> None:
    """With a thousand clients, a call per client and per event was most of the fan-out's
    work: a burst is handed to each client in one call."""
    streaming, address = relaying_api()
    async with streaming.running() as runtime:
        queues = [CountingQueue(1000) for _ in range(CLIENTS)]
        for queue in queues:
            await runtime.subscribe(queue, address)
        await asyncio.gather(*(runtime.emit(address, {"n": n}) for n in range(BURST)))
        for queue in queues:
            while len(queue.items) < BURST:
                await asyncio.wait_for(queue.wait(), 10)
                await asyncio.sleep(0)

        assert [queue.calls for queue in queues] == [[BURST]] * CLIENTS
        assert [[e["n"] for e in decoded(queue)] for queue in queues] == [
            list(range(BURST))
        ] * CLIENTS
        assert runtime.fanout.streams[address].sent == BURST * CLIENTS


def decoded(queue: ClientQueue) -> list[Any]:
    return [json.loads(item.data_json) for item in queue.take() if isinstance(item, EncodedEvent)]


async def test_a_subscribe_handler_that_waits_does_not_hold_back_what_it_prepared() -> None:
    """Events are handed out in batches, but a batch does not wait for a slow handler:
    once preparing has taken ``LINGER_SECONDS``, what is ready goes to the clients."""
    streaming = StreamingAPI(title="slow", version="1", broker="memory://")
    queue = ClientQueue(1000)
    pending_when_called: list[int] = []

    @streaming.subscribe("/slow/{room}")
    async def slow(event: dict[str, Any], room: str) -> dict[str, Any]:
        pending_when_called.append(len(queue.items))
        await asyncio.sleep(2 * fanout.LINGER_SECONDS)
        return event

    address = f"/slow/{uuid.uuid4().hex}"
    async with streaming.running() as runtime:
        await runtime.subscribe(queue, address)
        await asyncio.gather(*(runtime.emit(address, {"n": n}) for n in range(4)))
        while len(queue.items) < 4:
            await asyncio.wait_for(queue.wait(), 10)
            await asyncio.sleep(0)

        assert pending_when_called == [0, 1, 2, 3]


async def test_one_slow_call_of_a_subscribe_handler_does_not_hold_back_the_events_before_it() -> (
    None
):
    """The events prepared before a handler call that waits long go out at the latest
    ``LINGER_SECONDS`` after the first of them, not once that call returns."""
    streaming = StreamingAPI(title="slow once", version="1", broker="memory://")
    slow = asyncio.Event()

    @streaming.subscribe("/slow-once/{room}")
    async def lookup(event: dict[str, Any], room: str) -> dict[str, Any]:
        if event["n"] == 3:
            await slow.wait()  # a lookup that takes as long as the test wants
        return event

    address = f"/slow-once/{uuid.uuid4().hex}"
    async with streaming.running() as runtime:
        queue = ClientQueue(1000)
        await runtime.subscribe(queue, address)
        await asyncio.gather(*(runtime.emit(address, {"n": n}) for n in range(5)))

        async def three_arrived() -> None:
            while len(queue.items) < 3:
                await queue.wait()
                await asyncio.sleep(0)

        await asyncio.wait_for(three_arrived(), 50 * fanout.LINGER_SECONDS)
        assert [json.loads(item.data_json)["n"] for item in queue.items] == [0, 1, 2]
        slow.set()
        while len(queue.items) < 5:
            await asyncio.wait_for(queue.wait(), 10)
            await asyncio.sleep(0)
        assert [e["n"] for e in decoded(queue)] == [0, 1, 2, 3, 4]
