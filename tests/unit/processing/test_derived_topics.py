"""Derived topics declared on routers and run in process on memory://: filter/map, fan-in,
chaining, windows by event time, bad input, ids, and the declaration errors."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI, StreamingRouter
from fastapi_streaming.events import EncodedEvent
from fastapi_streaming.fanout import ClientQueue
from fastapi_streaming.processing import Sum, Tumbling, Window
from fastapi_streaming.runtime import StreamingRuntime


class Order(BaseModel):
    id: int
    size: float
    ts: float = 0.0


class Subscriber:
    """A client queue subscribed to one concrete address, read until enough events came."""

    def __init__(self, runtime: StreamingRuntime, address: str) -> None:
        self.runtime = runtime
        self.address = address
        self.queue = ClientQueue(1000)
        self.events: list[EncodedEvent] = []

    async def __aenter__(self) -> Subscriber:
        await self.runtime.subscribe(self.queue, self.address)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runtime.unsubscribe(self.queue, self.address)

    async def wait_for(self, count: int, timeout: float = 5) -> list[Any]:
        async def enough() -> None:
            while len(self.events) < count:
                await self.queue.wait()
                self.events += [i for i in self.queue.take() if isinstance(i, EncodedEvent)]

        await asyncio.wait_for(enough(), timeout)
        return [json.loads(e.data_json) for e in self.events]


def orders_api() -> StreamingAPI:
    streaming = StreamingAPI(broker="memory://")

    @streaming.publish("/orders/{desk}")
    async def order(event: Order, desk: str) -> Order:
        return event

    @streaming.subscribe("/orders/{desk}")
    async def orders(event: Order, desk: str) -> Order:
        return event

    return streaming


async def test_a_filter_map_handler_drops_events_by_returning_none() -> None:
    streaming = orders_api()
    router = StreamingRouter()

    @router.derive("/orders/{desk}/large", source="/orders/{desk}")
    def large(order: Order, desk: str) -> dict[str, Any] | None:
        return {"desk": desk, "id": order.id} if order.size >= 100 else None

    streaming.include_router(router)
    async with streaming.running() as runtime:
        async with Subscriber(runtime, "/orders/fx/large") as large_fx:
            for i, size in enumerate([5, 150, 99, 100]):
                await runtime.publish("/orders/fx", data={"id": i, "size": size})
            assert await large_fx.wait_for(2) == [{"desk": "fx", "id": 1}, {"desk": "fx", "id": 3}]


async def test_fan_in_and_chaining_of_derived_topics() -> None:
    streaming = orders_api()

    @streaming.publish("/trades/{desk}")
    async def trade(event: Order, desk: str) -> Order:
        return event

    @streaming.derive("/activity/{desk}", source=["/orders/{desk}", "/trades/{desk}"])
    def activity(event: Order, desk: str) -> Order:
        return event

    # A derived topic as the source of another: summed per desk and second.
    @streaming.derive(
        "/activity/{desk}/volume",
        source="/activity/{desk}",
        window=Tumbling(seconds=1),
        aggregate=Sum("size"),
        time="ts",
    )
    def volume(window: Window[float], desk: str) -> dict[str, Any]:
        return {"desk": desk, "start": window.start, "volume": window.value}

    async with streaming.running() as runtime:
        async with Subscriber(runtime, "/activity/fx/volume") as volume_fx:
            await runtime.publish("/orders/fx", data={"id": 1, "size": 10, "ts": 100.2})
            await runtime.publish("/trades/fx", data={"id": 2, "size": 5, "ts": 100.7})
            await runtime.publish("/orders/eq", data={"id": 3, "size": 7, "ts": 100.5})
            await runtime.publish("/trades/fx", data={"id": 4, "size": 1, "ts": 101.1})
            assert await volume_fx.wait_for(1) == [{"desk": "fx", "start": 100.0, "volume": 15}]


async def test_events_without_a_usable_time_are_skipped_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    streaming = StreamingAPI(broker="memory://")

    @streaming.publish("/raw/{room}")
    async def raw(event: dict[str, Any], room: str) -> dict[str, Any]:
        return event

    @streaming.derive(
        "/raw/{room}/count", source="/raw/{room}", window=Tumbling(seconds=1), time="ts"
    )
    def count(window: Window[int], room: str) -> dict[str, Any]:
        return {"count": window.value}

    async with streaming.running() as runtime:
        async with Subscriber(runtime, "/raw/r1/count") as counts:
            with caplog.at_level(logging.WARNING, "fastapi_streaming.processing"):
                for data in [
                    {"ts": 5.1},
                    {"no": "time"},
                    {"ts": "yesterday"},
                    {"ts": [1]},
                    {"ts": "1970-01-01T00:00:05.5Z"},
                    {"ts": 6.2},
                ]:
                    await runtime.publish("/raw/r1", data=data)
                assert await counts.wait_for(1) == [{"count": 2}]
        processing = streaming_processing(streaming)
        assert processing.stats.bad_time == 3
        assert processing.stats.received == 6
    assert "without a usable time" in caplog.text
    assert caplog.text.count("without a usable time") == 1  # rate-limited


def streaming_processing(streaming: StreamingAPI) -> Any:
    """The one pipeline of the running API."""
    processing = streaming.processing
    assert processing is not None
    (pipeline,) = processing.pipelines.values()
    return pipeline


async def test_window_results_have_deterministic_ids_per_topic_key_and_window() -> None:
    ids = []
    for _ in range(2):  # two owners computing the same input, one after the other
        streaming = orders_api()

        @streaming.derive(
            "/orders/{desk}/count", source="/orders/{desk}", window=Tumbling(seconds=1), time="ts"
        )
        def counted(window: Window[int], desk: str) -> int:
            return window.value

        async with streaming.running() as runtime:
            async with Subscriber(runtime, "/orders/fx/count") as counts:
                for i, ts in enumerate([10.1, 10.2, 11.3]):
                    await runtime.publish("/orders/fx", data={"id": i, "size": 1, "ts": ts})
                await counts.wait_for(1)
                ids.append(counts.events[0].event.id)
    assert ids[0] == ids[1]
    assert ids[0].startswith("00000000-2af8-7")  # a UUIDv7 dated at the window's end (11 s)


def test_invalid_declarations_fail_with_what_to_change() -> None:
    streaming = orders_api()

    with pytest.raises(ValueError, match="its own source, a cycle"):
        streaming.derive("/loop", source="/loop")(lambda event: event)
    with pytest.raises(ValueError, match="must take the window's result"):
        streaming.derive("/orders/{desk}/n", source="/orders/{desk}", window=Tumbling(seconds=1))(
            lambda desk: desk
        )
    with pytest.raises(ValueError, match=r"parameters \['room'\] that its source"):
        streaming.derive("/rooms/{room}", source="/orders/{desk}")(lambda event: event)

    streaming.derive("/a", source="/b")(lambda event: event)
    with pytest.raises(ValueError, match=r"cycle \(/b -> /a -> /b\)"):
        streaming.derive("/b", source="/a")(lambda event: event)


async def test_an_unknown_source_fails_when_the_api_starts() -> None:
    streaming = orders_api()

    @streaming.derive("/orders/{desk}/big", source="/order/{desk}")  # a typo
    def big(order: Order) -> Order:
        return order

    with pytest.raises(ValueError, match=r"reads '/order/\{desk\}', which is not a topic"):
        async with streaming.running():
            pass


async def test_a_router_prefix_applies_to_the_derived_topic_and_its_sources() -> None:
    router = StreamingRouter(prefix="/shop")

    @router.publish("/orders/{desk}")
    async def order(event: Order, desk: str) -> Order:
        return event

    @router.derive("/orders/{desk}/ids", source="/orders/{desk}")
    def ids(order: Order) -> int:
        return order.id

    streaming = StreamingAPI(broker="memory://")
    streaming.include_router(router, prefix="/v1")
    topic = streaming.topics.get("/v1/shop/orders/{desk}/ids")
    assert topic is not None and topic.derivation is not None
    assert topic.derivation.sources == ("/v1/shop/orders/{desk}",)
    async with streaming.running() as runtime:
        async with Subscriber(runtime, "/v1/shop/orders/x/ids") as out:
            await runtime.publish("/v1/shop/orders/x", data={"id": 7, "size": 1})
            assert await out.wait_for(1) == [7]


async def test_a_broker_without_pattern_subscriptions_is_refused_at_start() -> None:
    streaming = orders_api()
    streaming.broker_url = "postgres://postgres@127.0.0.1:5432/test"

    @streaming.derive("/orders/{desk}/ids", source="/orders/{desk}")
    def ids(order: Order) -> int:
        return order.id

    with pytest.raises(RuntimeError, match="cannot subscribe to channel patterns yet"):
        async with streaming.running():
            pass


async def test_updates_keys_by_field_async_handlers_and_failing_handlers() -> None:
    streaming = StreamingAPI(broker="memory://")

    @streaming.publish("/trades")
    async def trade(event: dict[str, Any]) -> dict[str, Any]:
        return event

    @streaming.derive(
        "/trades/{symbol}/volume",
        source="/trades",
        key="symbol",
        window=Tumbling(seconds=60),
        aggregate=Sum("qty"),
        time="ts",
        emit="updates",
        min_interval=0.0,
    )
    async def volume(window: Window[float], symbol: str) -> dict[str, Any]:
        if window.value > 1000:
            raise RuntimeError("too big to report")
        return {"symbol": symbol, "volume": window.value, "final": window.final}

    async with streaming.running() as runtime:
        async with Subscriber(runtime, "/trades/ACME/volume") as acme:
            for data in [
                {"symbol": "ACME", "qty": 5, "ts": 1.0},
                {"symbol": "OTHER", "qty": 7, "ts": 2.0},
                {"symbol": "ACME", "qty": 2000, "ts": 3.0},  # the handler fails: logged
                {"symbol": "ACME", "qty": -1995, "ts": 4.0},
                {"qty": 1, "ts": 5.0},  # no key field: skipped and counted
            ]:
                await runtime.publish("/trades", data=data)
            assert await acme.wait_for(2) == [
                {"symbol": "ACME", "volume": 5, "final": False},
                {"symbol": "ACME", "volume": 10, "final": False},
            ]
        pipeline = streaming_processing(streaming)
        assert pipeline.stats.handler_errors == 1
        assert pipeline.stats.bad_input == 1


async def test_processing_time_windows_close_with_the_clock() -> None:
    streaming = orders_api()

    @streaming.derive("/orders/{desk}/rate", source="/orders/{desk}", window=Tumbling(seconds=0.2))
    def rate(window: Window[int], desk: str) -> int:
        return window.value

    async with streaming.running() as runtime:
        async with Subscriber(runtime, "/orders/fx/rate") as out:
            for i in range(3):
                await runtime.publish("/orders/fx", data={"id": i, "size": 1})
            counted = await out.wait_for(1)
    assert sum(counted) >= 1


async def test_a_derived_topic_has_scopes_and_resumes_like_any_topic() -> None:
    streaming = orders_api()

    @streaming.derive("/orders/{desk}/ids", source="/orders/{desk}", scopes=["ids:read"])
    def ids(order: Order) -> int:
        return order.id

    topic = streaming.topics.get("/orders/{desk}/ids")
    assert topic is not None and topic.subscribe is not None
    assert topic.subscribe.scopes == ("ids:read",)
    async with streaming.running() as runtime:
        async with Subscriber(runtime, "/orders/fx/ids") as first:
            for i in range(3):
                await runtime.publish("/orders/fx", data={"id": i, "size": 1})
            await first.wait_for(3)
        resumed = Subscriber(runtime, "/orders/fx/ids")
        await runtime.subscribe(
            resumed.queue, "/orders/fx/ids", last_event_id=first.events[0].event.id
        )
        assert await resumed.wait_for(2) == [1, 2]
        await runtime.unsubscribe(resumed.queue, "/orders/fx/ids")


async def test_a_windowed_handler_may_take_the_key_field_by_name() -> None:
    streaming = StreamingAPI(broker="memory://")

    @streaming.publish("/readings/{site}")
    async def reading(event: dict[str, Any], site: str) -> dict[str, Any]:
        return event

    @streaming.derive(
        "/readings/{site}/max",
        source="/readings/{site}",
        key="sensor",
        window=Tumbling(seconds=1),
        aggregate=Sum("v"),
        time="ts",
    )
    def peak(window: Window[float], site: str, sensor: str) -> dict[str, Any]:
        return {"site": site, "sensor": sensor, "sum": window.value}

    async with streaming.running() as runtime:
        async with Subscriber(runtime, "/readings/north/max") as out:
            for sensor, v, ts in [("a", 1, 0.1), ("b", 2, 0.2), ("a", 3, 0.3), ("a", 0, 1.5)]:
                await runtime.publish("/readings/north", data={"sensor": sensor, "v": v, "ts": ts})
            got = await out.wait_for(2)
    assert sorted(got, key=lambda r: r["sensor"]) == [
        {"site": "north", "sensor": "a", "sum": 4},
        {"site": "north", "sensor": "b", "sum": 2},
    ]


async def test_a_stopping_pipeline_ends_a_task_that_swallowed_its_cancellation() -> None:
    """Some broker clients swallow a cancellation (nats-py while it flushes): the pipeline
    cancels again, or a task would compute on after its owner let go."""
    from fastapi_streaming.processing.pipeline import Pipeline

    streaming = orders_api()

    @streaming.derive("/orders/{desk}/ids", source="/orders/{desk}")
    def ids(order: Order) -> int:
        return order.id

    async def stubborn() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass  # swallowed, as a library might
        await asyncio.sleep(30)

    async with streaming.running():
        topic = streaming.topics.get("/orders/{desk}/ids")
        assert topic is not None
        pipeline = Pipeline(topic, streaming.topics, streaming.runtime)
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        pipeline._tasks = [task]
        stopping = asyncio.create_task(pipeline.stop())
        await asyncio.wait({stopping}, timeout=5)  # does not cancel it, unlike wait_for
        stopped = stopping.done()
        task.cancel()  # the test's own cleanup, should stop() not have ended it
        await asyncio.wait({stopping}, timeout=1)
        assert stopped
