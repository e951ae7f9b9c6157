"""The behaviour every processing engine owes derived topics, as tests an engine inherits.

The same declarations must give the same events on every engine: windows (tumbling, hopping,
session, count) keyed by the address's parameters and a ``key=`` field, event time with a
watermark and allowed lateness, final or per-update emission, filter/map, bad input skipped,
outputs with the deterministic ids of :mod:`fastapi_streaming.processing.ids`, and a failover
that neither loses a window's events nor counts one twice. Every test declares its topics on
channels of its own, publishes through a running :class:`~fastapi_streaming.StreamingAPI` and
reads the derived topic as a subscriber does.

How an engine package uses it (with ``pytest-asyncio`` installed)::

    from fastapi_streaming.testing.processing_conformance import ProcessingConformance


    class TestMyEngine(ProcessingConformance):
        engine = "my-engine"
        url = "kafka://127.0.0.1:9092"
        #: What the engine does not do (yet), by test name: these must fail, and say why.
        unsupported = {"test_late_events_update_a_closed_window": "no updates after close"}
        #: What it fails only sometimes (timing), by test name, and why.
        unreliable = {}

Override the ``broker_url`` fixture instead of ``url`` when the broker is started by a fixture.
Tests that need a broker shared by two APIs (failover) are skipped on ``memory://``. Events
are published with times that close each window explicitly, so no test waits for idle time.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI
from fastapi_streaming.events import EncodedEvent
from fastapi_streaming.fanout import ClientQueue
from fastapi_streaming.processing import (
    CountWindow,
    Hopping,
    Session,
    Sum,
    Tumbling,
    Window,
)
from fastapi_streaming.processing.ids import window_event_id
from fastapi_streaming.runtime import StreamingRuntime


class Click(BaseModel):
    user: str
    ts: float
    size: float = 1.0


#: Declares the derived topic(s) of a test on an API whose source is ``/clicks/{page}``.
Declare = Callable[[StreamingAPI, str], None]


class Received:
    """What a subscriber of one concrete derived address got: ids and payloads, in order."""

    def __init__(self, runtime: StreamingRuntime, address: str) -> None:
        self.runtime = runtime
        self.address = address
        self.queue = ClientQueue(10_000)
        self.events: list[EncodedEvent] = []

    async def wait_for(self, count: int, timeout: float) -> list[Any]:
        """The first ``count`` distinct events (an event re-emitted with its id counts once)."""

        async def enough() -> None:
            while len(self.distinct()) < count:
                await self.queue.wait()
                self.events += [i for i in self.queue.take() if isinstance(i, EncodedEvent)]

        try:
            await asyncio.wait_for(enough(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"{self.address} got {len(self.distinct())} of {count} events within "
                f"{timeout} s: {self.payloads()}"
            ) from None
        return self.payloads()[:count]

    async def wait_until(self, found: Callable[[Any], bool], timeout: float) -> None:
        """Wait for an event whose payload ``found`` accepts."""

        async def arrived() -> None:
            while not any(found(payload) for payload in self.payloads()):
                await self.queue.wait()
                self.events += [i for i in self.queue.take() if isinstance(i, EncodedEvent)]

        try:
            await asyncio.wait_for(arrived(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"{self.address} got no such event within {timeout} s: {self.payloads()}"
            ) from None

    def distinct(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for event in self.events:
            payload = json.loads(event.data_json)
            known = found.setdefault(event.event.id, payload)
            assert known == payload, f"id {event.event.id} was emitted with two payloads"
        return found

    def payloads(self) -> list[Any]:
        return list(self.distinct().values())

    def ids(self) -> list[str]:
        return list(self.distinct())


class ProcessingConformance:
    """Abstract: subclass with ``engine`` and ``url`` (or a ``broker_url`` fixture)."""

    engine: ClassVar[str] = "embedded"
    url: ClassVar[str] = "memory://"
    #: Seconds to wait for derived events (an external processor takes longer to start).
    patience: float = 10.0
    #: Tests the engine is known to fail, by name, with the reason (they are strict xfails).
    unsupported: ClassVar[dict[str, str]] = {}
    #: How long those wait: they fail by waiting in vain, and waiting less cannot make one pass.
    unsupported_patience: ClassVar[float] = 10.0
    #: Tests the engine fails depending on timing, by name, with the reason (lax xfails).
    unreliable: ClassVar[dict[str, str]] = {}

    @pytest.fixture
    def broker_url(self) -> str:
        return self.url

    @pytest.fixture
    def tag(self) -> str:
        """Channels of this test's own, so tests never read each other's events."""
        return f"c{uuid.uuid4().hex[:10]}"

    @pytest.fixture(autouse=True)
    def mark_unsupported(self, request: pytest.FixtureRequest) -> None:
        reason = self.unsupported.get(request.node.originalname)
        if reason is not None:
            request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))
            self.patience = min(self.patience, self.unsupported_patience)
        reason = self.unreliable.get(request.node.originalname)
        if reason is not None:
            request.node.add_marker(pytest.mark.xfail(reason=reason, strict=False))

    # -- the harness ---------------------------------------------------------------------

    def api(self, broker_url: str, tag: str, declare: Declare) -> StreamingAPI:
        streaming = StreamingAPI(broker=broker_url, processing_engine=self.engine)

        @streaming.publish("/clicks/{page}", channel=f"{tag}.clicks.{{page}}")
        async def clicks(event: Click, page: str) -> Click:
            return event

        declare(streaming, tag)
        return streaming

    @asynccontextmanager
    async def running(
        self, broker_url: str, tag: str, declare: Declare, *addresses: str
    ) -> AsyncIterator[tuple[StreamingRuntime, list[Received]]]:
        """Run an API with the test's topics and subscribe to the derived ``addresses``."""
        streaming = self.api(broker_url, tag, declare)
        async with AsyncExitStack() as stack:
            runtime = await stack.enter_async_context(streaming.running())
            received = []
            for address in addresses:
                subscriber = Received(runtime, address)
                await runtime.subscribe(subscriber.queue, address)
                stack.push_async_callback(runtime.unsubscribe, subscriber.queue, address)
                received.append(subscriber)
            yield runtime, received

    async def clicks(self, runtime: StreamingRuntime, *events: tuple[str, float]) -> None:
        for page, ts in events:
            await runtime.publish(f"/clicks/{page}", data={"user": "u", "ts": ts})

    # -- windows ---------------------------------------------------------------------------

    async def test_tumbling_count_per_key_by_event_time(self, broker_url: str, tag: str) -> None:
        async with self.running(
            broker_url, tag, per_second, "/clicks/home/per-second", "/clicks/docs/per-second"
        ) as (runtime, (home, docs)):
            await self.clicks(runtime, ("home", 10.1), ("home", 10.5), ("docs", 10.7))
            await self.clicks(runtime, ("home", 11.2), ("docs", 11.3), ("home", 12.5))
            await self.clicks(runtime, ("docs", 12.6))
            assert await home.wait_for(2, self.patience) == [
                {"page": "home", "start": 10.0, "end": 11.0, "count": 2},
                {"page": "home", "start": 11.0, "end": 12.0, "count": 1},
            ]
            assert await docs.wait_for(2, self.patience) == [
                {"page": "docs", "start": 10.0, "end": 11.0, "count": 1},
                {"page": "docs", "start": 11.0, "end": 12.0, "count": 1},
            ]

    async def test_the_watermark_is_shared_by_keys(self, broker_url: str, tag: str) -> None:
        """Time moves for the whole derived topic: a key's window closes when any key's events
        pass its end, not only on that key's next event."""
        async with self.running(broker_url, tag, per_second, "/clicks/docs/per-second") as (
            runtime,
            (docs,),
        ):
            await self.clicks(runtime, ("docs", 10.7), ("home", 10.8), ("home", 12.5))
            assert await docs.wait_for(1, self.patience) == [
                {"page": "docs", "start": 10.0, "end": 11.0, "count": 1},
            ]

    async def test_hopping_window_sums_a_field(self, broker_url: str, tag: str) -> None:
        def declare(streaming: StreamingAPI, tag: str) -> None:
            @streaming.derive(
                "/clicks/{page}/moving",
                source="/clicks/{page}",
                channel=f"{tag}.moving.{{page}}",
                window=Hopping(seconds=2, every_seconds=1),
                aggregate=Sum("size"),
                time="ts",
            )
            def moving(window: Window[float], page: str) -> dict[str, Any]:
                return {"start": window.start, "end": window.end, "sum": window.value}

        async with self.running(broker_url, tag, declare, "/clicks/home/moving") as (
            runtime,
            (moving,),
        ):
            for ts, size in ((10.5, 1), (11.5, 2), (12.5, 4), (14.5, 0)):
                data = {"user": "u", "ts": ts, "size": size}
                await runtime.publish("/clicks/home", data=data)
            assert await moving.wait_for(4, self.patience) == [
                {"start": 9.0, "end": 11.0, "sum": 1},
                {"start": 10.0, "end": 12.0, "sum": 3},
                {"start": 11.0, "end": 13.0, "sum": 6},
                {"start": 12.0, "end": 14.0, "sum": 4},
            ]

    async def test_session_windows_end_after_a_gap(self, broker_url: str, tag: str) -> None:
        def declare(streaming: StreamingAPI, tag: str) -> None:
            @streaming.derive(
                "/clicks/{page}/sessions",
                source="/clicks/{page}",
                channel=f"{tag}.sessions.{{page}}",
                window=Session(seconds=1),
                time="ts",
            )
            def sessions(window: Window[int], page: str) -> dict[str, Any]:
                return {"start": window.start, "end": window.end, "count": window.value}

        async with self.running(broker_url, tag, declare, "/clicks/home/sessions") as (
            runtime,
            (sessions,),
        ):
            await self.clicks(runtime, ("home", 10.0), ("home", 10.5), ("home", 11.2))
            await self.clicks(runtime, ("home", 15.0), ("home", 20.0))
            assert await sessions.wait_for(2, self.patience) == [
                {"start": 10.0, "end": 11.2, "count": 3},
                {"start": 15.0, "end": 15.0, "count": 1},
            ]

    async def test_count_windows_hold_a_number_of_events(self, broker_url: str, tag: str) -> None:
        def declare(streaming: StreamingAPI, tag: str) -> None:
            @streaming.derive(
                "/clicks/{page}/threes",
                source="/clicks/{page}",
                channel=f"{tag}.threes.{{page}}",
                window=CountWindow(3),
                aggregate=Sum("size"),
                time="ts",
            )
            def threes(window: Window[float], page: str) -> dict[str, Any]:
                return {"sum": window.value, "events": window.events}

        async with self.running(broker_url, tag, declare, "/clicks/home/threes") as (
            runtime,
            (threes,),
        ):
            for n in range(7):
                data = {"user": "u", "ts": 10 + n, "size": n}
                await runtime.publish("/clicks/home", data=data)
            assert await threes.wait_for(2, self.patience) == [
                {"sum": 3, "events": 3},
                {"sum": 12, "events": 3},
            ]

    # -- lateness and emission ---------------------------------------------------------------

    async def test_late_events_are_dropped(self, broker_url: str, tag: str) -> None:
        async with self.running(broker_url, tag, per_second, "/clicks/home/per-second") as (
            runtime,
            (home,),
        ):
            await self.clicks(runtime, ("home", 10.2), ("home", 11.5), ("home", 10.8))
            await self.clicks(runtime, ("home", 12.5))
            assert await home.wait_for(2, self.patience) == [
                {"page": "home", "start": 10.0, "end": 11.0, "count": 1},
                {"page": "home", "start": 11.0, "end": 12.0, "count": 1},
            ]

    async def test_allowed_lateness_keeps_a_window_open(self, broker_url: str, tag: str) -> None:
        def declare(streaming: StreamingAPI, tag: str) -> None:
            per_second(streaming, tag, allowed_lateness=1.0)

        async with self.running(broker_url, tag, declare, "/clicks/home/per-second") as (
            runtime,
            (home,),
        ):
            await self.clicks(runtime, ("home", 10.2), ("home", 11.5), ("home", 10.8))
            await self.clicks(runtime, ("home", 12.5), ("home", 13.5))
            assert await home.wait_for(2, self.patience) == [
                {"page": "home", "start": 10.0, "end": 11.0, "count": 2},
                {"page": "home", "start": 11.0, "end": 12.0, "count": 1},
            ]

    async def test_late_events_update_a_closed_window(self, broker_url: str, tag: str) -> None:
        def declare(streaming: StreamingAPI, tag: str) -> None:
            per_second(streaming, tag, late="update")

        async with self.running(broker_url, tag, declare, "/clicks/home/per-second") as (
            runtime,
            (home,),
        ):
            await self.clicks(runtime, ("home", 10.2), ("home", 11.5), ("home", 10.8))
            assert await home.wait_for(2, self.patience) == [
                {"page": "home", "start": 10.0, "end": 11.0, "count": 1},
                {"page": "home", "start": 10.0, "end": 11.0, "count": 2},
            ]

    async def test_emit_on_every_update(self, broker_url: str, tag: str) -> None:
        def declare(streaming: StreamingAPI, tag: str) -> None:
            per_second(streaming, tag, emit="updates")

        async with self.running(broker_url, tag, declare, "/clicks/home/per-second") as (
            runtime,
            (home,),
        ):
            await self.clicks(runtime, ("home", 10.2), ("home", 10.4), ("home", 10.6))
            counts = [event["count"] for event in await home.wait_for(3, self.patience)]
            assert counts == [1, 2, 3]

    # -- keys ------------------------------------------------------------------------------

    async def test_a_key_field_splits_windows_further(self, broker_url: str, tag: str) -> None:
        def declare(streaming: StreamingAPI, tag: str) -> None:
            @streaming.derive(
                "/clicks/{page}/by-user",
                source="/clicks/{page}",
                channel=f"{tag}.by-user.{{page}}",
                window=Tumbling(seconds=1),
                time="ts",
                key="user",
            )
            def by_user(window: Window[int], page: str, user: str) -> dict[str, Any]:
                return {"user": user, "count": window.value}

        async with self.running(broker_url, tag, declare, "/clicks/home/by-user") as (
            runtime,
            (by_user,),
        ):
            clicks = (("ann", 10.1), ("bob", 10.2), ("ann", 10.3), ("bob", 11.5), ("ann", 11.6))
            for user, ts in clicks:
                await runtime.publish("/clicks/home", data={"user": user, "ts": ts})
            found = await by_user.wait_for(2, self.patience)
            assert sorted(found, key=lambda event: event["user"]) == [
                {"user": "ann", "count": 2},
                {"user": "bob", "count": 1},
            ]

    # -- outputs ---------------------------------------------------------------------------

    async def test_outputs_have_deterministic_ids(self, broker_url: str, tag: str) -> None:
        """The id of a window's result depends only on the derived address, key and window:
        the same on every engine and owner, so a result emitted twice is one event."""
        async with self.running(broker_url, tag, per_second, "/clicks/home/per-second") as (
            runtime,
            (home,),
        ):
            await self.clicks(runtime, ("home", 10.5), ("home", 11.5))
            await home.wait_for(1, self.patience)
            expected = window_event_id("/clicks/home/per-second", ("home",), 10.0, 11.0, 0)
            assert home.ids() == [expected]

    async def test_a_filter_maps_and_drops_events(self, broker_url: str, tag: str) -> None:
        def declare(streaming: StreamingAPI, tag: str) -> None:
            @streaming.derive(
                "/clicks/{page}/big",
                source="/clicks/{page}",
                channel=f"{tag}.big.{{page}}",
            )
            def big(click: Click, page: str) -> dict[str, Any] | None:
                return {"page": page, "size": click.size} if click.size >= 10 else None

        async with self.running(broker_url, tag, declare, "/clicks/home/big") as (
            runtime,
            (big,),
        ):
            for size in (1, 12, 3, 10):
                await runtime.publish("/clicks/home", data={"user": "u", "ts": 1, "size": size})
            assert await big.wait_for(2, self.patience) == [
                {"page": "home", "size": 12},
                {"page": "home", "size": 10},
            ]

    async def test_events_without_a_time_are_skipped(self, broker_url: str, tag: str) -> None:
        def declare(streaming: StreamingAPI, tag: str) -> None:
            @streaming.publish("/raw/{page}", channel=f"{tag}.raw.{{page}}")
            async def raw(event: dict[str, Any], page: str) -> dict[str, Any]:
                return event

            @streaming.derive(
                "/raw/{page}/per-second",
                source="/raw/{page}",
                channel=f"{tag}.raw-per-second.{{page}}",
                window=Tumbling(seconds=1),
                time="ts",
            )
            def counted(window: Window[int], page: str) -> dict[str, Any]:
                return {"start": window.start, "count": window.value}

        async with self.running(broker_url, tag, declare, "/raw/home/per-second") as (
            runtime,
            (counted,),
        ):
            for data in ({"ts": 10.1}, {"no": "time"}, {"ts": "not a time"}, {"ts": 11.5}):
                await runtime.publish("/raw/home", data=data)
            assert await counted.wait_for(1, self.patience) == [{"start": 10.0, "count": 1}]

    # -- failover --------------------------------------------------------------------------

    async def test_failover_neither_loses_nor_double_counts(
        self, broker_url: str, tag: str
    ) -> None:
        """The owner stops mid-window; the next owner's result of that window counts the
        events from before and after the handover, each once."""
        if broker_url.startswith("memory:"):
            pytest.skip(
                "memory:// is one process's broker: there is no other owner to fail over to"
            )
        first = self.api(broker_url, tag, per_second)
        second = self.api(broker_url, tag, per_second)
        address = "/clicks/home/per-second"
        closed = {"page": "home", "start": 10.0, "end": 11.0, "count": 2}
        handed_over = {"page": "home", "start": 11.0, "end": 12.0, "count": 3}
        async with AsyncExitStack() as stack:
            runtime_one = await stack.enter_async_context(first.running())
            before = await self.watch(stack, runtime_one, address)
            await self.clicks(runtime_one, ("home", 10.1), ("home", 10.5), ("home", 11.2))
            # [10, 11) closed: the owner has folded in 11.2, the first event of [11, 12).
            assert await before.wait_for(1, self.patience) == [closed]
            runtime_two = await stack.enter_async_context(second.running())
            after = await self.watch(stack, runtime_two, address)
            assert first.processing is not None
            await first.processing.stop()  # mid-window [11, 12)
            await self.clicks(runtime_two, ("home", 11.4), ("home", 11.9), ("home", 12.5))
            await owned(second, "/clicks/{page}/per-second", self.patience)
            await after.wait_until(lambda payload: payload["start"] == 11.0, self.patience)
            assert [p for p in after.payloads() if p["start"] == 11.0] == [handed_over]
            # A result emitted again by the new owner is the same event (the same id).
            again = [i for i, p in after.distinct().items() if p["start"] == 10.0]
            assert again in ([], before.ids())

    async def watch(
        self, stack: AsyncExitStack, runtime: StreamingRuntime, address: str
    ) -> Received:
        subscriber = Received(runtime, address)
        await runtime.subscribe(subscriber.queue, address)
        stack.push_async_callback(runtime.unsubscribe, subscriber.queue, address)
        return subscriber


async def owned(streaming: StreamingAPI, address: str, timeout: float) -> None:
    """Wait until ``streaming``'s engine computes ``address``."""

    async def computing() -> None:
        while not (streaming.processing and address in streaming.processing.owned):  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    await asyncio.wait_for(computing(), timeout)


def per_second(streaming: StreamingAPI, tag: str, **options: Any) -> None:
    """The clicks tutorial's derived topic: a tumbling 1 s count per page by event time."""

    @streaming.derive(
        "/clicks/{page}/per-second",
        source="/clicks/{page}",
        channel=f"{tag}.per-second.{{page}}",
        window=Tumbling(seconds=1),
        time="ts",
        **options,
    )
    def counted(window: Window[int], page: str) -> dict[str, Any]:
        return {"page": page, "start": window.start, "end": window.end, "count": window.value}


__all__ = ["Click", "ProcessingConformance", "Received", "owned", "per_second"]
