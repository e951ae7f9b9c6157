"""The conformance suite for a backend that is its own broker, inside the application process.

Four of :class:`~fastapi_streaming.testing.BackendConformance`'s tests need a broker outside
the process: another instance sharing it, another system's client writing to it, bytes on a
wire, a server to stop. An in-process backend has none of these, so instead of skipping them,
:class:`InProcessConformance` replaces each (under the same name) with a test of what such a
backend promises in its place; each docstring says why.
"""

from __future__ import annotations

from typing import ClassVar

from fastapi_streaming.brokers.hookspecs import BackendFactory
from fastapi_streaming.testing.conformance import (
    BackendConformance,
    BrokerControl,
    Connected,
    OpenBackend,
)
from fastapi_streaming.testing.inbox import Inbox


class InProcessConformance(BackendConformance):
    """Subclass this instead of ``BackendConformance`` for an in-process backend."""

    instances_share_broker: ClassVar[bool] = False
    quiet_seconds: ClassVar[float] = 0.1

    async def test_several_backends_in_one_process_each_get_every_message(
        self, open_backend: OpenBackend, base: str
    ) -> None:
        """Each instance is a broker of its own: another instance never sees its messages.

        fastapi-streaming keeps one backend per process, so an in-process broker serves exactly
        one application; two instances sharing messages would leak events between two apps.
        """
        channel = f"{base}.fanout"
        first, second = await open_backend(), await open_backend()
        await self.subscribe(first.backend, channel)
        await self.subscribe(second.backend, channel)
        await self.publish(first.backend, channel, "for the first only")
        received = await first.inbox.next(channel, timeout=self.receive_timeout)
        assert received == "for the first only", received
        await second.inbox.expect_nothing(channel, seconds=self.quiet_seconds)

    async def test_native_messages_arrive(
        self, broker_url: str, backend_factory: BackendFactory, base: str
    ) -> None:
        """No other client can write to an in-process broker: it has no wire and no format.

        What another system would send natively, here only ``publish()`` in the same process
        can; it is handed over as the very object published, never encoded or copied.
        """
        channel = f"{base}.market.quotes.AAPL"
        raw = '{"symbol": "AAPL", "price": 187.1, "venue": "Zürich"}'
        backend = backend_factory(broker_url)
        await self.within(backend.connect(), "connect()")
        try:
            await self.subscribe(backend, channel)
            await self.publish(backend, channel, raw)
            event = await self.within(backend.next_published(), "next_published()")
        finally:
            await self.within(backend.disconnect(), "disconnect()")
        assert event.channel == channel and event.message is raw, event

    async def test_a_message_that_is_not_utf8_is_skipped(
        self, connected: Connected, base: str
    ) -> None:
        """No bytes travel through an in-process broker, so none can fail to decode.

        Text is passed on as Python ``str`` without an encoding step: even a string that has no
        UTF-8 form (a lone surrogate) arrives unchanged, and the channel keeps working.
        """
        channel = f"{base}.binary"
        await self.subscribe(connected.backend, channel)
        await self.publish(connected.backend, channel, "lone \udcff surrogate")
        await self.publish(connected.backend, channel, '{"after": true}')
        received = await connected.inbox.take(channel, 2, timeout=self.receive_timeout)
        assert received == ["lone \udcff surrogate", '{"after": true}'], received

    async def test_delivers_again_after_the_broker_restarts(
        self, broker_control: BrokerControl | None, open_backend: OpenBackend, base: str
    ) -> None:
        """The broker is the process: it restarts only with it, and its clients with it.

        There is no broker to stop under a running backend. What fastapi-streaming does after a
        broker failure still applies: its listener stops, then ``disconnect()``, ``connect()``
        and ``subscribe()`` again, and a new listener; messages must then arrive, once each.
        """
        assert broker_control is None, "an in-process backend has no broker process to control"
        channel = f"{base}.restart"
        connected = await open_backend()
        await self.subscribe(connected.backend, channel)
        await connected.inbox.stop()
        await self.within(connected.backend.disconnect(), "disconnect()")
        await self.within(connected.backend.connect(), "connect()")
        await self.subscribe(connected.backend, channel)
        connected.inbox = Inbox(connected.backend)
        connected.inbox.start()
        await self.publish(connected.backend, channel, "after")
        assert await connected.inbox.next(channel, timeout=self.receive_timeout) == "after"
        await connected.inbox.expect_nothing(channel, seconds=self.quiet_seconds)
