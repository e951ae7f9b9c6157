"""Soak client: many SSE or WebSocket clients that reconnect and resume, as browsers do.

Run as ``python -m benchmarks.soakclient --port P --kind sse --connections N --rooms R
--prefix ROOM``; the soak runner drives it over stdin/stdout, one JSON line per command:

- ``status``: connections open, reconnecting, events received, gap signals, refusals;
- ``churn F``: close a random fraction F of the open connections and reconnect each at once,
  resuming from the last event it received (``Last-Event-ID``; ``last_event_id`` in the
  WebSocket ``subscribe`` message);
- ``report PATH``: what every connection missed, given the events the server accepted
  (``PATH``: a JSON object of room name to accepted sequence numbers);
- ``exit``: close everything and stop.

Connection ``i`` follows room ``i % R`` for its whole life. A connection the server closes, or
that fails to open, is reconnected after a second with the same resume id, the way
``EventSource`` does: what it missed meanwhile must come back, or be announced by a ``gap``. A
WebSocket ``subscribe`` refused with an ``error`` of code 503 (a resume while the broker is
away) is sent again a second later, as the WebSocket guide says to: the socket stays open with
nothing subscribed, so a client that gave up there would miss everything after, unannounced.
Asyncio protocols, as in the load client: per event a few byte searches and one bit set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any, cast

from . import wsframes
from .events import FIELDS

HEADER_END = b"\r\n\r\n"
WS_EVENT_ID = re.compile(rb'\{"type":"event","topic":"[^"]*","id":"([^"]+)"')
RECONNECT_DELAY = 1.0


def now_us() -> int:
    return time.time_ns() // 1000


class Client:
    """One logical client: its room, what it received, and its current connection."""

    def __init__(self, pool: Pool, room: str) -> None:
        self.pool = pool
        self.room = room
        self.last_id: str | None = None
        self.seen = bytearray()
        self.first_seq: int | None = None
        self.received = 0
        self.duplicates = 0
        self.gaps = 0
        self.resumes = 0
        self.drops = 0
        self.connection: Connection | None = None
        self.connecting = False

    def mark(self, seq: int, event_id: bytes | None) -> None:
        index, bit = seq >> 3, 1 << (seq & 7)
        if index >= len(self.seen):
            self.seen.extend(bytes(index - len(self.seen) + 1024))
        if self.seen[index] & bit:
            self.duplicates += 1
        else:
            self.seen[index] |= bit
            self.received += 1
        if self.first_seq is None:
            self.first_seq = seq
        if event_id is not None:
            self.last_id = event_id.decode()

    def has(self, seq: int) -> bool:
        index = seq >> 3
        return index < len(self.seen) and bool(self.seen[index] & (1 << (seq & 7)))

    async def connect(self, delay: float = 0.0) -> None:
        """(Re)connect, resuming from the last event received; retry every second until open."""
        if self.connecting:
            return
        self.connecting = True
        try:
            if delay:
                await asyncio.sleep(delay)
            while not self.pool.closing:
                if self.last_id is not None:
                    self.resumes += 1
                if await self.pool.open(self):
                    return
                await asyncio.sleep(RECONNECT_DELAY)
        finally:
            self.connecting = False


class Connection(asyncio.Protocol):
    """One connection of a client; subclasses know the framing."""

    def __init__(self, client: Client, host: str, path: str, last_id: str | None) -> None:
        self.client = client
        self.host = host
        self.path = path
        self.last_id = last_id
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.opened = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closing = False  # closed by this client (churn or exit), not by the server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request())

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.opened:
            end = buf.find(HEADER_END)
            if end < 0:
                self.buf = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if not self.accepted(status):
                code = status.split(b" ")[1] if status.count(b" ") else b"0"
                self.client.pool.refused(int(code) if code.isdigit() else 0)
                self.fail(f"status {status[:40]!r}")
                return
            self.opened = True
            buf = buf[end + 4 :]
            self.on_open()
        self.buf = self.consume(buf)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before opening: {exc!r}"))
            return
        client = self.client
        if client.connection is self:
            client.connection = None
        if not self.closing and not client.pool.closing:
            client.drops += 1
            client.pool.spawn(client, RECONNECT_DELAY)

    def fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.close()

    def on_open(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def request(self) -> bytes:
        raise NotImplementedError

    def accepted(self, status_line: bytes) -> bool:
        raise NotImplementedError

    def consume(self, buf: bytes) -> bytes:
        raise NotImplementedError


class SSEConnection(Connection):
    def request(self) -> bytes:
        resume = f"Last-Event-ID: {self.last_id}\r\n" if self.last_id else ""
        return (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: text/event-stream\r\n"
            f"{resume}\r\n"
        ).encode()

    def accepted(self, status_line: bytes) -> bool:
        return b" 200 " in status_line

    def consume(self, buf: bytes) -> bytes:
        end = buf.rfind(b"\n\n") + 2
        if end < 2:
            return buf
        client = self.client
        for block in buf[:end].split(b"\n\n"):
            if not block:
                continue
            if b"event: gap" in block:
                client.gaps += 1
                continue
            found = FIELDS.search(block)
            if found is None:
                continue
            start = block.find(b"id: ")
            event_id = block[start + 4 : block.find(b"\n", start)] if start >= 0 else None
            client.mark(int(found.group(1)), event_id)
        return buf[end:]


class WSConnection(Connection):
    def request(self) -> bytes:
        return wsframes.handshake(self.host, self.path)

    def accepted(self, status_line: bytes) -> bool:
        return b" 101 " in status_line

    def on_open(self) -> None:
        self.subscribe(self.last_id)
        super().on_open()

    def subscribe(self, last_id: str | None) -> None:
        assert self.transport is not None
        subscribe: dict[str, Any] = {"type": "subscribe", "id": 1, "topic": self.topic}
        if last_id:
            subscribe["last_event_id"] = last_id
        frame = json.dumps(subscribe, separators=(",", ":")).encode()
        self.transport.write(wsframes.client_frame(wsframes.TEXT, frame))

    def subscribe_again(self) -> None:
        """After a refused ``subscribe`` (503 while the broker is away, as documented): send it
        again a second later, from the last event received, as a browser app would. The socket
        stays open meanwhile, with nothing subscribed."""
        if self.closing or self.transport is None or self.transport.is_closing():
            return
        self.client.resumes += 1
        self.subscribe(self.client.last_id)

    @property
    def topic(self) -> str:
        return f"/bench/{self.client.room}"

    def consume(self, buf: bytes) -> bytes:
        used, others = wsframes.walk(buf)
        if not used:
            return buf
        controls = {start: (opcode, stop) for opcode, start, stop in others}
        pos = 0
        client = self.client
        while pos < used:
            second = buf[pos + 1]
            size, start = second & 0x7F, pos + 2
            if size == 126:
                size, start = int.from_bytes(buf[start : start + 2], "big"), start + 2
            elif size == 127:
                size, start = int.from_bytes(buf[start : start + 8], "big"), start + 8
            stop = start + size
            if start in controls:
                self.control(controls[start][0], buf[start:stop])
            else:
                payload = buf[start:stop]
                if payload.startswith(b'{"type":"event"'):
                    found = FIELDS.search(payload)
                    matched = WS_EVENT_ID.match(payload)
                    if found is not None:
                        client.mark(int(found.group(1)), matched.group(1) if matched else None)
                elif payload.startswith(b'{"type":"gap"'):
                    client.gaps += 1
                elif payload.startswith(b'{"type":"error"'):
                    client.pool.errors += 1
                    if b'"code":503' in payload:
                        loop = asyncio.get_running_loop()
                        loop.call_later(RECONNECT_DELAY, self.subscribe_again)
            pos = stop
        return buf[used:]

    def control(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        if opcode == wsframes.PING:
            self.transport.write(wsframes.client_frame(wsframes.PONG, payload))
        elif opcode == wsframes.CLOSE:
            self.transport.write(wsframes.client_frame(wsframes.CLOSE, payload[:2]))
            self.transport.close()


class Pool:
    """Every client of this process."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.kind = SSEConnection if args.kind == "sse" else WSConnection
        self.host = f"127.0.0.1:{args.port}"
        self.clients = [
            Client(self, f"{args.prefix}-{i % args.rooms}")
            for i in range(args.offset, args.offset + args.connections)
        ]
        self.closing = False
        self.errors = 0
        self.refusals: list[tuple[int, int]] = []  # (time in µs, HTTP status)
        self.failures = 0
        self.limit = asyncio.Semaphore(args.concurrency)
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, client: Client, delay: float = 0.0) -> None:
        """Reconnect ``client`` in the background (the task is kept until it is done)."""
        task = asyncio.get_running_loop().create_task(client.connect(delay))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def refused(self, status: int) -> None:
        if len(self.refusals) < 10_000:
            self.refusals.append((now_us(), status))

    def path(self, client: Client) -> str:
        return "/streams/ws" if self.args.kind == "ws" else f"/streams/sse/bench/{client.room}"

    async def open(self, client: Client) -> bool:
        loop = asyncio.get_running_loop()
        async with self.limit:
            try:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: self.kind(client, self.host, self.path(client), client.last_id),
                        "127.0.0.1",
                        self.args.port,
                    ),
                    20,
                )
                await asyncio.wait_for(asyncio.shield(conn.ready), 20)
            except (OSError, asyncio.TimeoutError, ConnectionError):
                self.failures += 1
                return False
        client.connection = conn
        return True

    def status(self) -> dict[str, Any]:
        clients = self.clients
        return {
            "open": sum(1 for c in clients if c.connection is not None),
            "reconnecting": sum(1 for c in clients if c.connecting),
            "received": sum(c.received for c in clients),
            "gaps": sum(c.gaps for c in clients),
            "drops": sum(c.drops for c in clients),
            "resumes": sum(c.resumes for c in clients),
            "failures": self.failures,
            "refusals": len(self.refusals),
            "errors": self.errors,
        }

    def churn(self, fraction: float) -> int:
        open_clients = [c for c in self.clients if c.connection is not None and not c.connecting]
        chosen = random.sample(open_clients, round(len(open_clients) * fraction))
        for client in chosen:
            assert client.connection is not None
            client.connection.close()
            client.connection = None
            self.spawn(client)
        return len(chosen)

    def report(self, accepted: dict[str, list[int]]) -> dict[str, Any]:
        """Per missed event (seq): how many clients missed it, resumed or not, told or not."""
        missed: dict[str, dict[int, int]] = {
            "resumed_silent": {},
            "resumed_gap": {},
            "other_silent": {},
            "other_gap": {},
        }
        for client in self.clients:
            if client.first_seq is None:
                continue
            kind = ("resumed" if client.resumes else "other") + (
                "_gap" if client.gaps else "_silent"
            )
            for seq in accepted.get(client.room, ()):
                if seq > client.first_seq and not client.has(seq):
                    missed[kind][seq] = missed[kind].get(seq, 0) + 1
        return {
            **self.status(),
            "clients": len(self.clients),
            "resumed_clients": sum(1 for c in self.clients if c.resumes),
            "clients_with_gaps": sum(1 for c in self.clients if c.gaps),
            "never_received": sum(1 for c in self.clients if c.first_seq is None),
            "duplicates": sum(c.duplicates for c in self.clients),
            "duplicates_resumed": sum(c.duplicates for c in self.clients if c.resumes),
            f"duplicates_{self.args.kind}": sum(c.duplicates for c in self.clients),
            "missed": missed,
            "refused": self.refusals,
        }

    def close(self) -> None:
        self.closing = True
        for client in self.clients:
            if client.connection is not None:
                client.connection.close()


async def serve(args: argparse.Namespace) -> None:
    pool = Pool(args)
    await asyncio.gather(*(client.connect() for client in pool.clients))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps(pool.status()), flush=True)
    while True:
        line = (await reader.readline()).decode().split()
        if not line or line[0] == "exit":
            break
        if line[0] == "status":
            answer = pool.status()
        elif line[0] == "churn":
            answer = {"churned": pool.churn(float(line[1]))}
        elif line[0] == "report":
            accepted = json.loads(await asyncio.to_thread(Path(line[1]).read_text))
            answer = pool.report(accepted)
        else:
            answer = {"error": f"unknown command {line[0]!r}"}
        print(json.dumps(answer), flush=True)
    pool.close()
    await asyncio.sleep(0.1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kind", choices=["sse", "ws"], required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--rooms", type=int, required=True)
    parser.add_argument("--prefix", required=True, help="room names: PREFIX-0, PREFIX-1, ...")
    parser.add_argument("--offset", type=int, default=0, help="index of the first client")
    parser.add_argument("--concurrency", type=int, default=100, help="connects in flight")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))


if __name__ == "__main__":
    main()
