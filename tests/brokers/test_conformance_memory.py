"""The in-process backend passes the conformance suite, which shows the suite itself works.

Four of the suite's tests assume a broker outside the process; the memory backend is the
process itself, so each is replaced by a test of what the memory backend promises instead,
with the reason in its docstring.
"""

from __future__ import annotations

from fastapi_streaming.brokers.memory import MemoryBackend
from fastapi_streaming.testing import BackendConformance, BrokerControl, Connected, OpenBackend


class TestMemoryBackend(BackendConformance):
    url = "memory://"
    factory = MemoryBackend
    instances_share_broker = False  # each instance is its own little broker
    quiet_seconds = 0.1

    async def test_several_backends_in_one_process_each_get_every_message(
        self, open_backend: OpenBackend, base: str
    ) -> None:
        """Each instance is a broker of its own: another instance never sees its messages.

        fastapi-streaming keeps one backend per process, so a memory broker serves exactly one
        process; two instances sharing messages would be a leak between two applications.
        """
        channel = f"{base}.fanout"
        first, second = await open_backend(), await open_backend()
        await self.subscribe(first.backend, channel)
        await self.subscribe(second.backend, channel)
        await self.publish(first.backend, channel, "for the first only")
        assert await first.inbox.next(channel, timeout=self.receive_timeout) == (
            "for the first only"
        )
        await second.inbox.expect_nothing(channel, seconds=self.quiet_seconds)

    async def test_native_messages_arrive(self, base: str) -> None:
        """No other client can write to a memory broker: it has no wire and no native format.

        What another system would send natively, here only ``publish()`` in the same process
        can; it is handed over as the very object published, never encoded or copied.
        """
        channel = f"{base}.market.quotes.AAPL"
        raw = '{"symbol": "AAPL", "price": 187.1, "venue": "Zürich"}'
        backend = MemoryBackend("memory://")
        await backend.connect()
        try:
            await backend.subscribe(channel)
            await backend.publish(channel, raw)
            event = await self.within(backend.next_published(), "next_published()")
        finally:
            await backend.disconnect()
        assert event.channel == channel and event.message is raw, event

    async def test_a_message_that_is_not_utf8_is_skipped(
        self, connected: Connected, base: str
    ) -> None:
        """No bytes travel through a memory broker, so none can fail to decode.

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
        """The memory broker is the process: it restarts only with it, and its clients with it.

        There is no broker to stop under a running backend. What fastapi-streaming does after a
        broker failure still applies to it: ``disconnect()``, ``connect()`` and ``subscribe()``
        again, after which messages must arrive.
        """
        assert broker_control is None, "a memory backend has no broker process to control"
        channel = f"{base}.restart"
        connected = await open_backend()
        await self.subscribe(connected.backend, channel)
        await connected.backend.disconnect()
        await connected.backend.connect()
        await self.subscribe(connected.backend, channel)
        await self.publish(connected.backend, channel, "after")
        assert await connected.inbox.next(channel, timeout=self.receive_timeout) == "after"
        await connected.inbox.expect_nothing(channel, seconds=self.quiet_seconds)


def test_memory_suite_replaces_only_the_tests_that_need_an_outside_broker() -> None:
    """The overrides above keep the suite's names, so no conformance test is lost by renaming."""
    replaced = {
        name
        for name in vars(TestMemoryBackend)
        if name.startswith("test_") and hasattr(BackendConformance, name)
    }
    assert replaced == {
        "test_several_backends_in_one_process_each_get_every_message",
        "test_native_messages_arrive",
        "test_a_message_that_is_not_utf8_is_skipped",
        "test_delivers_again_after_the_broker_restarts",
    }, replaced
