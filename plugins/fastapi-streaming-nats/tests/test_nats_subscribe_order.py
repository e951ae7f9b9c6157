"""``subscribe()`` returns only once the NATS server holds the subscription.

nats-py (2.16) writes the PING of ``flush()`` straight to the socket, while the SUB of a
``subscribe()`` still waits in its write buffer for the client's flusher task: on the wire the
PING comes first, so its PONG proves nothing about the SUB. A message published from another
connection in that moment finds no interest and is dropped (core NATS keeps nothing). The
conformance test ``test_a_message_right_after_subscribe_is_delivered`` failed that way once, on
a loaded machine, where the server happened to read the other connection's PUB before the SUB.

A proxy of the test's own, between the backend and the shared NATS server on 127.0.0.1:4222,
makes that moment certain instead of rare: it holds a SUB the client sends until the client
sends a PING after it (the only order that proves anything), or until the test lets it through.
The publisher is a raw socket, so that its PUB is surely routed before the test goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from fastapi_streaming_nats import NATSBackend

NATS_PORT = 4222


class SubHoldingProxy:
    """Forwards one client to NATS, holding each SUB line until a PING line follows it."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._upstream: asyncio.StreamWriter | None = None
        self._held: list[bytes] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> SubHoldingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def release(self) -> None:
        """Let what is held through now."""
        if self._upstream is not None and self._held:
            self._upstream.writelines(self._held)
        self._held.clear()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in tuple(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", NATS_PORT)
        self._upstream = up_writer
        self._writers += [writer, up_writer]
        for pump in (self._client_to_server(reader, up_writer), _copy(up_reader, writer)):
            task = asyncio.create_task(pump)
            self._tasks.add(task)

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while line := await reader.readline():  # the subscriber sends only command lines
            if self._held or line.startswith(b"SUB "):
                self._held.append(line)
                if line == b"PING\r\n":  # a PING after the SUB: its PONG will prove the SUB
                    self.release()
            else:
                writer.write(line)
            await writer.drain()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def publish_routed(subject: str, payload: bytes) -> None:
    """Publish on a raw connection; return once the server has routed the message (its PONG
    to the PING after the PUB comes only then)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", NATS_PORT)
    try:
        await reader.readline()  # INFO
        writer.write(
            b'CONNECT {"verbose":false,"pedantic":false}\r\n'
            + f"PUB {subject} {len(payload)}\r\n".encode()
            + payload
            + b"\r\nPING\r\n"
        )
        while (line := await asyncio.wait_for(reader.readline(), 10)) != b"PONG\r\n":
            assert line, "NATS closed the connection"
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_message_published_once_subscribe_returned_is_delivered() -> None:
    proxy = await SubHoldingProxy().start()
    backend = NATSBackend(f"nats://127.0.0.1:{proxy.port}")
    subject = f"subscribe-order-{uuid.uuid4().hex[:12]}"
    await backend.connect()
    try:
        await asyncio.wait_for(backend.subscribe(subject), 10)
        await publish_routed(subject, b"right away")

        proxy.release()  # whatever is still held (the SUB, if subscribe returned without it)
        await backend.ping()  # its PING follows the SUB now: the server holds the subscription
        await publish_routed(subject, b"next")
        first = await asyncio.wait_for(backend.next_published(), 10)
        assert first.message == "right away", "published after subscribe() returned, and lost"
        second = await asyncio.wait_for(backend.next_published(), 10)
        assert second.message == "next"
    finally:
        await backend.disconnect()
        await proxy.stop()
