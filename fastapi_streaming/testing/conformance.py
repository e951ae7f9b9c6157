"""The behaviour every broker backend owes fastapi-streaming, as tests a backend package inherits.

fastapi-streaming keeps one backend per process, subscribes it once per channel however many
clients listen, reads ``next_published()`` from one listener task, and publishes from many
request handlers at once. These tests hold a backend to exactly that, against its real server.

Contract, beyond ``broadcaster.BroadcastBackend``'s six methods:

- ``subscribe(channel)`` returns once the broker will deliver the channel's messages, and is
  idempotent (subscribing twice, even concurrently, delivers each message once);
  ``unsubscribe(channel)`` ends the subscription whatever the number of subscribes before it.
  Counting listeners is the caller's job.
- ``next_published()`` returns ``broadcaster.Event`` with ``channel`` exactly as subscribed and
  ``message`` as ``str``; each message once, in publishing order per channel; never messages of
  channels not subscribed; a message that is not UTF-8 is logged and skipped.
- ``publish()`` either hands the message to the broker whole or raises; a message over the
  broker's size limit raises an error whose text names that limit.
- ``disconnect()`` leaves no task running and no connection open.

How a plugin author uses it (with ``pytest-asyncio`` installed)::

    from fastapi_streaming.testing import BackendConformance

    from my_plugin import MyBackend


    class TestMyBackend(BackendConformance):
        url = "mybroker://127.0.0.1:1234"
        factory = MyBackend

        @pytest.fixture
        def native_publish(self, broker_url: str) -> NativePublish:
            async def publish(channel: str, payload: bytes) -> None:
                ...  # write ``payload`` with the broker's own client, as another system would

            return publish

Override the ``broker_url`` or ``backend_factory`` fixtures instead of the ``url`` and
``factory`` attributes when they must be computed (a server on a free port, a unique stream).

Recovery from a broker restart is tested when the subclass overrides the ``broker_control``
fixture with a :class:`BrokerControl`: a broker of the test's own (never a shared one) that
the test stops, or kills with SIGKILL, and starts again (``PrivateBroker`` of
:mod:`fastapi_streaming.testing.processes` is one). The backend either raises from
``next_published()``, after which the test reconnects it the way fastapi-streaming does
(``disconnect()``, ``connect()``, ``subscribe()`` again, retried), or recovers by itself;
either way new messages must arrive.
The test prints how long after the broker's return the first message arrived.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import pytest
import pytest_asyncio
from broadcaster import BroadcastBackend

from fastapi_streaming.brokers.hookspecs import BackendFactory
from fastapi_streaming.testing.inbox import Inbox

T = TypeVar("T")

#: Writes raw bytes onto a channel with the broker's own client: ``await publish(channel, data)``.
NativePublish = Callable[[str, bytes], Awaitable[None]]

#: Payloads a JSON API meets in the wild: emoji (with joiners and flags), CJK, right-to-left
#: scripts, combining marks, astral-plane characters and JSON escapes.
UNICODE_PAYLOADS = (
    '{"emoji": "📈🚀 👩‍👩‍👧‍👦 🇯🇵"}',
    '{"cjk": "東京証券取引所 株価 주식 시세"}',
    '{"rtl": "سوق الأسهم — שוק המניות"}',
    '{"combining": "é ñ ǘ Z̤͔ͧ̑", "math": "\U0001d538\U0001d553\U0001d554 ∑∞"}',
    '{"escapes": "line\\nbreak \\"quoted\\" \\\\ tab\\t"}',
    "plain text with a\nreal newline and a\ttab",
)


@dataclass
class Connected:
    """A connected backend and the inbox that drains it."""

    backend: BroadcastBackend
    inbox: Inbox


class OpenBackend(Protocol):
    """Connects a backend to ``url`` (the suite's ``broker_url`` by default) and its inbox."""

    def __call__(self, url: str | None = None) -> Awaitable[Connected]: ...


class BrokerControl(Protocol):
    """A broker the tests may stop and start again: a private server on its own port."""

    #: The backend URL of this broker.
    url: str

    async def stop(self) -> None:
        """Stop the broker cleanly (its own shutdown signal); return once it is down."""

    async def kill(self) -> None:
        """Kill the broker with SIGKILL, as a crash would; return once it is down."""

    async def start(self) -> None:
        """Start the broker again at the same address; return once it accepts connections."""


def _deadline(
    test: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., Coroutine[Any, Any, None]]:
    """Bound a whole test by ``test_timeout`` so a backend that hangs fails it instead."""

    @functools.wraps(test)
    async def run(self: BackendConformance, *args: Any, **kwargs: Any) -> None:
        try:
            await asyncio.wait_for(test(self, *args, **kwargs), timeout=self.test_timeout)
        except asyncio.TimeoutError:
            pytest.fail(f"{test.__name__} did not finish within {self.test_timeout} s")

    return run


@pytest.mark.asyncio
class BackendConformance:
    """Abstract tests for a ``broadcaster.BroadcastBackend``; subclass it, named ``Test…``."""

    #: The broker URL to test against (or override the ``broker_url`` fixture).
    url: ClassVar[str | None] = None
    #: Builds the backend from the URL (or override the ``backend_factory`` fixture).
    factory: ClassVar[Callable[..., BroadcastBackend] | None] = None
    #: False for in-process backends, whose separate instances cannot see each other.
    instances_share_broker: ClassVar[bool] = True
    #: Seconds to wait for one message, or for one backend call to return.
    receive_timeout: ClassVar[float] = 10.0
    #: Seconds of silence that show a message is not coming.
    quiet_seconds: ClassVar[float] = 0.5
    #: Seconds one whole test may take.
    test_timeout: ClassVar[float] = 60.0
    #: The large payload every backend must carry or refuse clearly.
    large_payload_bytes: ClassVar[int] = 256 * 1024
    #: Seconds the broker stays down in the restart test: long enough for a client's own
    #: quick retries to run out, as in a real outage.
    outage_seconds: ClassVar[float] = 2.0

    # Fixtures a subclass provides or overrides ---------------------------------------------

    @pytest.fixture
    def broker_url(self) -> str:
        if self.url is None:
            pytest.fail(f"{type(self).__name__} sets neither `url` nor a `broker_url` fixture")
        return self.url

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        factory = type(self).factory
        if factory is None:
            pytest.fail(f"{type(self).__name__} sets neither `factory` nor `backend_factory`")
        return factory

    @pytest.fixture
    def native_publish(self) -> NativePublish | None:
        """Override to return a coroutine function writing raw bytes with the native client."""
        return None

    @pytest.fixture
    def broker_control(self) -> BrokerControl | None:
        """Override to return a broker of the test's own that may be stopped and started."""
        return None

    # Fixtures of the suite -----------------------------------------------------------------

    @pytest.fixture
    def base(self) -> str:
        """A channel-name prefix unique to one test: shared servers carry other tests too."""
        return f"conformance{uuid.uuid4().hex[:12]}"

    @pytest_asyncio.fixture
    async def open_backend(
        self, broker_url: str, backend_factory: BackendFactory
    ) -> AsyncIterator[OpenBackend]:
        """Connects backends on demand; disconnects them and checks nothing is left running."""
        before = asyncio.all_tasks()
        opened: list[Connected] = []

        async def open_one(url: str | None = None) -> Connected:
            backend = backend_factory(url or broker_url)
            await self.within(backend.connect(), "connect()")
            inbox = Inbox(backend)
            inbox.start()
            opened.append(Connected(backend, inbox))
            return opened[-1]

        yield open_one

        for connected in reversed(opened):
            await connected.inbox.stop()
            await self.within(connected.backend.disconnect(), "disconnect()")
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()  # unclosed sockets warn now, in this test, not in a later one
        current = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
        if left:
            pytest.fail(f"tasks still running after disconnect(): {left!r}")

    @pytest_asyncio.fixture
    async def connected(self, open_backend: OpenBackend) -> Connected:
        return await open_backend()

    async def within(self, call: Awaitable[T], what: str) -> T:
        """Await a backend call, failing the test if it does not return in time."""
        try:
            return await asyncio.wait_for(call, timeout=self.receive_timeout)
        except asyncio.TimeoutError:
            pytest.fail(f"backend {what} did not return within {self.receive_timeout} s")

    async def publish(self, backend: BroadcastBackend, channel: str, message: str) -> None:
        await self.within(backend.publish(channel, message), f"publish({channel!r}, …)")

    async def subscribe(self, backend: BroadcastBackend, channel: str) -> None:
        await self.within(backend.subscribe(channel), f"subscribe({channel!r})")

    async def unsubscribe(self, backend: BroadcastBackend, channel: str) -> None:
        await self.within(backend.unsubscribe(channel), f"unsubscribe({channel!r})")

    async def publisher(self, connected: Connected, open_backend: OpenBackend) -> Connected:
        """Another process's backend where the broker allows it, else the same one."""
        return await open_backend() if self.instances_share_broker else connected

    # The tests -----------------------------------------------------------------------------

    @_deadline
    async def test_publish_and_receive_on_one_channel(
        self, connected: Connected, base: str
    ) -> None:
        channel = f"{base}.stocks.AAPL"
        await self.subscribe(connected.backend, channel)
        await self.publish(connected.backend, channel, '{"price": 187.1}')
        received = await connected.inbox.next(channel, timeout=self.receive_timeout)
        assert received == '{"price": 187.1}', received

    @_deadline
    async def test_many_channels_each_get_their_own_messages(
        self, connected: Connected, base: str
    ) -> None:
        channels = [f"{base}.orders{number}" for number in range(20)]
        await asyncio.gather(*(self.subscribe(connected.backend, c) for c in channels))
        for channel in channels:
            await self.publish(connected.backend, channel, f'{{"for": "{channel}"}}')
        for channel in channels:
            received = await connected.inbox.next(channel, timeout=self.receive_timeout)
            assert received == f'{{"for": "{channel}"}}', (channel, received)

    @_deadline
    async def test_order_of_a_thousand_messages_per_channel(
        self, connected: Connected, base: str
    ) -> None:
        main, side = f"{base}.ticks", f"{base}.other"
        await self.subscribe(connected.backend, main)
        await self.subscribe(connected.backend, side)
        for number in range(1000):
            await self.publish(connected.backend, main, str(number))
            if number % 10 == 0:
                await self.publish(connected.backend, side, str(number))
        received = await connected.inbox.take(main, 1000, timeout=self.receive_timeout)
        assert received == [str(n) for n in range(1000)], _first_difference(received, 1000)
        side_received = await connected.inbox.take(side, 100, timeout=self.receive_timeout)
        assert side_received == [str(n) for n in range(0, 1000, 10)], side_received

    @_deadline
    async def test_shared_backend_delivers_each_message_once(
        self, connected: Connected, base: str
    ) -> None:
        """Many request handlers publish through the one backend of a process at once."""
        channel = f"{base}.shared"
        await self.subscribe(connected.backend, channel)

        async def producer(name: int) -> None:
            for number in range(25):
                await self.publish(connected.backend, channel, f"{name}:{number}")

        await asyncio.gather(*(producer(name) for name in range(4)))
        received = await connected.inbox.take(channel, 100, timeout=self.receive_timeout)
        await connected.inbox.expect_nothing(channel, seconds=self.quiet_seconds)
        assert connected.inbox.counts[channel] == 100, connected.inbox.counts[channel]
        for name in range(4):
            mine = [m for m in received if m.startswith(f"{name}:")]
            assert mine == [f"{name}:{n}" for n in range(25)], mine

    @_deadline
    async def test_several_backends_in_one_process_each_get_every_message(
        self, open_backend: OpenBackend, base: str
    ) -> None:
        if not self.instances_share_broker:
            pytest.skip("separate instances of this backend do not share a broker")
        channel = f"{base}.fanout"
        consumers = [await open_backend() for _ in range(3)]
        for consumer in consumers:
            await self.subscribe(consumer.backend, channel)
        producer = await open_backend()
        for number in range(10):
            await self.publish(producer.backend, channel, str(number))
        for consumer in consumers:
            received = await consumer.inbox.take(channel, 10, timeout=self.receive_timeout)
            assert received == [str(n) for n in range(10)], received
        await consumers[0].inbox.expect_nothing(channel, seconds=self.quiet_seconds)
        assert all(c.inbox.counts[channel] == 10 for c in consumers)

    @_deadline
    async def test_unsubscribe_then_resubscribe(self, connected: Connected, base: str) -> None:
        channel = f"{base}.again"
        backend, inbox = connected.backend, connected.inbox
        await self.subscribe(backend, channel)
        await self.publish(backend, channel, "first")
        assert await inbox.next(channel, timeout=self.receive_timeout) == "first"
        await self.unsubscribe(backend, channel)
        await self.publish(backend, channel, "while away")
        await inbox.expect_nothing(channel, seconds=self.quiet_seconds)
        await self.subscribe(backend, channel)
        await self.publish(backend, channel, "back")
        received = await inbox.next(channel, timeout=self.receive_timeout)
        assert received == "back", f"expected 'back', got {received!r}"

    @_deadline
    async def test_unsubscribing_one_channel_leaves_the_others(
        self, connected: Connected, base: str
    ) -> None:
        kept, left = [f"{base}.a", f"{base}.c"], f"{base}.b"
        backend, inbox = connected.backend, connected.inbox
        for channel in [*kept, left]:
            await self.subscribe(backend, channel)
        await self.unsubscribe(backend, left)
        for round_ in range(3):
            for channel in [*kept, left]:
                await self.publish(backend, channel, f"{channel}/{round_}")
        for channel in kept:
            received = await inbox.take(channel, 3, timeout=self.receive_timeout)
            assert received == [f"{channel}/{n}" for n in range(3)], received
        await inbox.expect_nothing(left, seconds=self.quiet_seconds)

    @_deadline
    async def test_nested_channel_names_are_distinct_channels(
        self, connected: Connected, base: str
    ) -> None:
        """``stocks`` is not a wildcard for ``stocks.AAPL``, on brokers with topic levels too."""
        parent, child = f"{base}.stocks", f"{base}.stocks.AAPL"
        backend, inbox = connected.backend, connected.inbox
        await self.subscribe(backend, parent)
        await self.subscribe(backend, child)
        await self.publish(backend, child, "child")
        await self.publish(backend, parent, "parent")
        assert await inbox.next(child, timeout=self.receive_timeout) == "child"
        assert await inbox.next(parent, timeout=self.receive_timeout) == "parent"
        await inbox.expect_nothing(parent, seconds=self.quiet_seconds)
        assert inbox.counts[child] == 1 and inbox.counts[parent] == 1, inbox.counts

    @_deadline
    async def test_unicode_payloads_arrive_unchanged(self, connected: Connected, base: str) -> None:
        channel = f"{base}.unicode"
        await self.subscribe(connected.backend, channel)
        for payload in UNICODE_PAYLOADS:
            await self.publish(connected.backend, channel, payload)
        received = await connected.inbox.take(
            channel, len(UNICODE_PAYLOADS), timeout=self.receive_timeout
        )
        assert received == list(UNICODE_PAYLOADS), received

    @_deadline
    async def test_large_payload_arrives_whole_or_is_refused_clearly(
        self, connected: Connected, base: str
    ) -> None:
        channel = f"{base}.large"
        backend, inbox = connected.backend, connected.inbox
        payload = _large_payload(self.large_payload_bytes)
        await self.subscribe(backend, channel)
        try:
            await self.publish(backend, channel, payload)
        except Exception as exc:
            text = str(exc)
            assert re.search(r"\d", text) and re.search(r"(?i)size|limit|large|bytes", text), (
                f"publishing {len(payload.encode())} bytes failed without naming the size "
                f"limit: {exc!r}"
            )
        else:
            received = await inbox.next(channel, timeout=self.receive_timeout)
            assert received == payload, (
                f"sent {len(payload)} characters, received {len(received)} that differ"
            )
        await self.publish(backend, channel, "still working")
        assert await inbox.next(channel, timeout=self.receive_timeout) == "still working"

    @_deadline
    async def test_native_messages_arrive(
        self, connected: Connected, base: str, native_publish: NativePublish | None
    ) -> None:
        if native_publish is None:
            pytest.skip("this backend's tests provide no native_publish")
        channel = f"{base}.market.quotes.AAPL"
        await self.subscribe(connected.backend, channel)
        raw = '{"symbol": "AAPL", "price": 187.1, "venue": "Zürich"}'
        await self.within(native_publish(channel, raw.encode()), "native publish")
        assert await connected.inbox.next(channel, timeout=self.receive_timeout) == raw

    @_deadline
    async def test_a_message_that_is_not_utf8_is_skipped(
        self, connected: Connected, base: str, native_publish: NativePublish | None
    ) -> None:
        if native_publish is None:
            pytest.skip("this backend's tests provide no native_publish")
        channel = f"{base}.binary"
        await self.subscribe(connected.backend, channel)
        await self.within(native_publish(channel, b"\xff\xfe\x00binary"), "native publish")
        await self.within(native_publish(channel, b'{"after": true}'), "native publish")
        received = await connected.inbox.next(channel, timeout=self.receive_timeout)
        assert received == '{"after": true}', f"expected the valid message, got {received!r}"

    @_deadline
    async def test_concurrent_first_subscribes_do_not_race(
        self, connected: Connected, base: str
    ) -> None:
        channel = f"{base}.contended"
        others = [f"{base}.other{number}" for number in range(5)]
        backend, inbox = connected.backend, connected.inbox
        await asyncio.gather(
            *(self.subscribe(backend, channel) for _ in range(10)),
            *(self.subscribe(backend, other) for other in others),
        )
        await self.publish(backend, channel, "once")
        for other in others:
            await self.publish(backend, other, other)
        assert await inbox.next(channel, timeout=self.receive_timeout) == "once"
        for other in others:
            assert await inbox.next(other, timeout=self.receive_timeout) == other
        await inbox.expect_nothing(channel, seconds=self.quiet_seconds)
        await self.unsubscribe(backend, channel)
        await self.publish(backend, channel, "after unsubscribe")
        await inbox.expect_nothing(channel, seconds=self.quiet_seconds)

    @_deadline
    async def test_a_message_right_after_subscribe_is_delivered(
        self, connected: Connected, open_backend: OpenBackend, base: str
    ) -> None:
        producer = await self.publisher(connected, open_backend)
        for number in range(5):
            channel = f"{base}.fresh{number}"
            await self.subscribe(connected.backend, channel)
            await self.publish(producer.backend, channel, f"right away {number}")
            received = await connected.inbox.next(channel, timeout=self.receive_timeout)
            assert received == f"right away {number}", received

    @pytest.mark.parametrize("outage", ["stop", "kill"])
    @_deadline
    async def test_delivers_again_after_the_broker_restarts(
        self,
        broker_control: BrokerControl | None,
        open_backend: OpenBackend,
        base: str,
        outage: str,
    ) -> None:
        """The broker shuts down cleanly (``stop``) or dies of SIGKILL (``kill``), then returns."""
        if broker_control is None:
            pytest.skip("this backend's tests provide no broker_control")
        channel = f"{base}.restart"
        connected = await open_backend(broker_control.url)
        await self.subscribe(connected.backend, channel)
        await self.publish(connected.backend, channel, "before")
        assert await connected.inbox.next(channel, timeout=self.receive_timeout) == "before"

        await (broker_control.kill() if outage == "kill" else broker_control.stop())
        try:
            accepted = await self._publish_during_outage(connected.backend, channel)
            await asyncio.sleep(self.outage_seconds)
        finally:
            await broker_control.start()  # even when cancelled: the next test needs the broker
        loop = asyncio.get_running_loop()
        back = loop.time()

        received = [await self._first_message_after_restart(connected, channel)]
        print(
            f"{type(self).__name__} [{outage}]: first delivery "
            f"{loop.time() - back:.2f} s after the broker's return; a publish during the "
            f"outage {'was accepted' if accepted else 'raised'}"
        )
        await self.publish(connected.backend, channel, "check")
        while received[-1] != "check":
            received.append(await connected.inbox.next(channel, timeout=self.receive_timeout))
        assert all(m.startswith("after ") or m == "during" for m in received[:-1]), received
        assert len(set(received)) == len(received), f"delivered twice: {received}"
        if accepted:
            assert "during" in received, (
                "publish() returned while the broker was down, but the message never arrived: "
                "it must raise instead (fastapi-streaming then answers 503)"
            )
        await connected.inbox.expect_nothing(channel, seconds=self.quiet_seconds)

    async def _publish_during_outage(self, backend: BroadcastBackend, channel: str) -> bool:
        """Publish while the broker is down: True if ``publish()`` took the message.

        It must return or raise in time (a request handler is waiting on it); a message it
        took must arrive once the broker is back, or it must raise.
        """
        try:
            await asyncio.wait_for(backend.publish(channel, "during"), self.receive_timeout)
        except asyncio.TimeoutError:
            pytest.fail(
                f"publish() did not return within {self.receive_timeout} s while the broker "
                "was down: it must raise, so that publishers learn of the outage"
            )
        except Exception:
            return False
        return True

    async def _first_message_after_restart(self, connected: Connected, channel: str) -> str:
        """Publish ``after <n>`` until one arrives, reconnecting whenever the backend raised."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.test_timeout / 2
        attempt = 0
        while loop.time() < deadline:
            if connected.inbox.failed:
                await connected.inbox.stop()
                await self._reconnect(connected.backend, channel, deadline)
                connected.inbox = Inbox(connected.backend)
                connected.inbox.start()
            attempt += 1
            try:
                await asyncio.wait_for(
                    connected.backend.publish(channel, f"after {attempt}"), self.receive_timeout
                )
            except Exception:
                await asyncio.sleep(0.2)  # still reconnecting
                continue
            try:
                return await connected.inbox.next(channel, timeout=1.0)
            except AssertionError:  # nothing yet, or next_published() raised
                continue
        pytest.fail("no message arrived after the broker restarted")

    async def _reconnect(self, backend: BroadcastBackend, channel: str, deadline: float) -> None:
        """What fastapi-streaming's broker connection does after ``next_published()`` raised."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.wait_for(backend.disconnect(), self.receive_timeout)
            except Exception:
                pass
            try:
                await asyncio.wait_for(backend.connect(), self.receive_timeout)
                await asyncio.wait_for(backend.subscribe(channel), self.receive_timeout)
                return
            except Exception:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)


def _large_payload(size: int) -> str:
    """JSON text of ``size`` UTF-8 bytes whose every position is checkable."""
    unit = '{"n": 0000000, "text": "Zürich 東京 📈"}\n'
    count = size // len(unit.encode()) + 1
    body = "".join(unit.replace("0000000", f"{n:07d}") for n in range(count))
    return body.encode()[:size].decode("utf-8", errors="ignore")


def _first_difference(received: list[str], count: int) -> str:
    for index, message in enumerate(received):
        if message != str(index):
            return f"message {index} was {message!r}, expected {index!r}"
    return f"received {len(received)} of {count} messages"
