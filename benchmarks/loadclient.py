"""Load client: M SSE or WebSocket connections in one process, measuring what reaches them.

Run as ``python -m benchmarks.loadclient --port P --kind sse --path /x --connections N``; a
runner drives it over stdin/stdout, one JSON line per command:

- ``status``: how many connections are open, primed (have seen a probe event), failed;
- ``report N [s1,s2,...]``: the final counts, given that the publisher sent events ``0..N-1``
  of which the server did not confirm ``s1, s2, ...`` (those are not counted as missing);
- ``exit``: close everything and stop.

It is written on bare asyncio protocols (with uvloop) because it must stay cheap next to the
servers it measures on the same two cores: per read it takes the arrival time once, keeps only
complete frames, finds every event's ``seq`` and ``ts`` with one regular expression in C, and
does a few integer operations per event in Python.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from array import array
from typing import Any, cast

from . import wsframes
from .events import FIELDS, PROBE_SEQ
from .latency import histogram

HEADER_END = b"\r\n\r\n"
findall = FIELDS.findall
time_ns = time.time_ns
CALL_ID = re.compile(rb'"call_id":\s*"([^"]+)"')
NOTIFY = b'"method":"notify"'


class Totals:
    """What all connections of this process observed."""

    def __init__(self) -> None:
        self.latencies: array[int] = array("q")
        self.first_us = 0
        self.last_us = 0
        self.failed = 0
        self.failures: dict[str, int] = {}

    def fail(self, why: str) -> None:
        self.failed += 1
        self.failures[why] = self.failures.get(why, 0) + 1


class Connection(asyncio.Protocol):
    """One client connection; subclasses know the framing."""

    def __init__(self, totals: Totals, host: str, path: str) -> None:
        self.totals = totals
        self.host = host
        self.path = path
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.opened = False  # the response (or upgrade) arrived
        self.ready = asyncio.get_running_loop().create_future()
        self.primed = False
        self.lost = False
        self.closed_by_server = False
        self.next_seq = 0
        self.received = 0
        self.duplicates = 0
        self.missing: set[int] = set()

    # -- asyncio ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but behave as one.
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
            if not self.accept_status(status):
                self.give_up("status " + status.decode(errors="replace")[:40])
                return
            self.opened = True
            buf = buf[end + 4 :]
            self.on_open()
        self.buf = self.consume(buf)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before opening: {exc!r}"))

    # -- framing --------------------------------------------------------------------------------

    def request(self) -> bytes:
        raise NotImplementedError

    def accept_status(self, status_line: bytes) -> bool:
        raise NotImplementedError

    def on_open(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    def consume(self, buf: bytes) -> bytes:
        """Handle every complete frame at the start of ``buf``; return the incomplete rest."""
        raise NotImplementedError

    def give_up(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.close()

    # -- events -----------------------------------------------------------------------------

    def events(self, buf: bytes, end: int) -> None:
        """Count the events in ``buf[:end]`` (complete frames only) and record their latency."""
        pairs = findall(buf, 0, end)
        if not pairs:
            return
        now = time_ns() // 1000
        totals = self.totals
        latencies = totals.latencies
        nxt = self.next_seq
        counted = 0
        for seq_text, ts_text in pairs:
            seq = int(seq_text)
            if seq == nxt:
                nxt += 1
            elif seq == PROBE_SEQ:
                self.primed = True
                continue
            else:
                nxt, fresh = self.out_of_order(seq, nxt)
                if not fresh:
                    continue
            counted += 1
            latencies.append(now - int(ts_text))
        self.next_seq = nxt
        if counted:
            self.received += counted
            if not totals.first_us:
                totals.first_us = now
            totals.last_us = now

    def out_of_order(self, seq: int, nxt: int) -> tuple[int, bool]:
        """Book a gap, a late event or a duplicate: the next expected seq, and if it is new."""
        if seq > nxt:
            self.missing.update(range(nxt, seq))
            return seq + 1, True
        if seq in self.missing:
            self.missing.discard(seq)
            return nxt, True
        self.duplicates += 1
        return nxt, False

    def gaps(self, unconfirmed: set[int]) -> int:
        """Confirmed events missing before the last one that arrived."""
        return len(self.missing - unconfirmed)

    def undelivered(self, published: int, unconfirmed: set[int]) -> int:
        """Confirmed events after the last one that arrived: lost, or still queued somewhere."""
        tail = max(0, published - self.next_seq)
        return tail - sum(1 for seq in unconfirmed if seq >= self.next_seq)


class SSEConnection(Connection):
    """``GET`` a ``text/event-stream``; events end with a blank line (LF or CRLF line ends)."""

    def request(self) -> bytes:
        return (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n\r\n"
        ).encode()

    def accept_status(self, status_line: bytes) -> bool:
        return b" 200 " in status_line

    def consume(self, buf: bytes) -> bytes:
        # The body is chunked; each chunk is one or more whole SSE events (every server here
        # writes whole events), so chunk-size lines sit between events and never split one.
        end = max(buf.rfind(b"\n\n") + 2, buf.rfind(b"\r\n\r\n") + 4)
        if end < 4:
            return buf
        if buf.find(b"event: close", 0, end) >= 0:
            self.closed_by_server = True
        self.events(buf, end)
        return buf[end:] if end < len(buf) else b""


class WSConnection(Connection):
    """A WebSocket whose every text frame is one event."""

    def request(self) -> bytes:
        return wsframes.handshake(self.host, self.path)

    def accept_status(self, status_line: bytes) -> bool:
        return b" 101 " in status_line

    def consume(self, buf: bytes) -> bytes:
        used, others = wsframes.walk(buf)
        if not used:
            return buf
        if others:
            self.control(buf, others)
        self.frames(buf, used)
        return buf[used:] if used < len(buf) else b""

    def frames(self, buf: bytes, end: int) -> None:
        self.events(buf, end)

    def control(self, buf: bytes, others: list[tuple[int, int, int]]) -> None:
        assert self.transport is not None
        for opcode, start, stop in others:
            if opcode == wsframes.PING:
                self.transport.write(wsframes.client_frame(wsframes.PONG, buf[start:stop]))
            elif opcode == wsframes.CLOSE:
                self.closed_by_server = True
                self.transport.write(wsframes.client_frame(wsframes.CLOSE, buf[start:stop]))
                self.transport.close()


class PubSubConnection(WSConnection):
    """fastapi-websocket-pubsub: subscribe by RPC, then answer every ``notify`` RPC call.

    The server awaits each client's answer before it calls the next client, so a client that
    did not answer would measure the library's timeouts, not its delivery.
    """

    TOPIC = "bench"

    def on_open(self) -> None:
        assert self.transport is not None
        request = {
            "request": {
                "method": "subscribe",
                "arguments": {"topics": [self.TOPIC]},
                "call_id": "subscribe",
            }
        }
        self.transport.write(wsframes.client_frame(wsframes.TEXT, json.dumps(request).encode()))

    def frames(self, buf: bytes, end: int) -> None:
        assert self.transport is not None
        if not self.ready.done() and buf.find(b'"call_id":"subscribe"', 0, end) >= 0:
            self.ready.set_result(None)
        if buf.find(NOTIFY, 0, end) < 0:
            return
        replies = [
            b'{"response":{"result":"None","result_type":"str","call_id":"%s"}}' % call_id
            for call_id in CALL_ID.findall(buf, 0, end)
            if call_id != b"subscribe"
        ]
        self.transport.writelines([wsframes.client_frame(wsframes.TEXT, r) for r in replies])
        self.events(buf, end)


KINDS: dict[str, type[Connection]] = {
    "sse": SSEConnection,
    "ws": WSConnection,
    "pubsub": PubSubConnection,
}


class LoadClient:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.totals = Totals()
        self.connections: list[Connection] = []

    async def open_all(self) -> None:
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(self.args.concurrency)
        kind = KINDS[self.args.kind]
        host = f"127.0.0.1:{self.args.port}"

        async def open_one() -> None:
            async with limit:
                try:
                    _, conn = await asyncio.wait_for(
                        loop.create_connection(
                            lambda: kind(self.totals, host, self.args.path),
                            "127.0.0.1",
                            self.args.port,
                        ),
                        self.args.timeout,
                    )
                    await asyncio.wait_for(asyncio.shield(conn.ready), self.args.timeout)
                except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
                    self.totals.fail(type(exc).__name__)
                    return
                self.connections.append(conn)

        await asyncio.gather(*(open_one() for _ in range(self.args.connections)))

    def status(self) -> dict[str, Any]:
        conns = self.connections
        return {
            "open": sum(1 for c in conns if not c.lost),
            "primed": sum(1 for c in conns if c.primed and not c.lost),
            "failed": self.totals.failed,
            "received": sum(c.received for c in conns),
            "last_us": self.totals.last_us,
        }

    def report(self, published: int, unconfirmed: set[int]) -> dict[str, Any]:
        conns = self.connections
        gaps = [c.gaps(unconfirmed) for c in conns]
        tails = [c.undelivered(published, unconfirmed) for c in conns]
        lats = self.totals.latencies
        return {
            **self.status(),
            "connections": self.args.connections,
            "dropped": sum(1 for c in conns if c.lost),
            "closed_by_server": sum(1 for c in conns if c.closed_by_server),
            "failures": self.totals.failures,
            "duplicates": sum(c.duplicates for c in conns),
            "gaps": sum(gaps),
            "conns_with_gaps": sum(1 for g in gaps if g),
            "undelivered": sum(tails),
            "conns_with_undelivered": sum(1 for t in tails if t),
            "first_us": self.totals.first_us,
            "max_us": max(lats) if lats else None,
            "histogram": histogram(lats),
        }

    def close(self) -> None:
        for conn in self.connections:
            if conn.transport is not None:
                conn.transport.close()


async def serve(args: argparse.Namespace) -> None:
    client = LoadClient(args)
    await client.open_all()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps(client.status()), flush=True)
    while True:
        line = (await reader.readline()).decode().split()
        if not line or line[0] == "exit":
            break
        if line[0] == "status":
            answer = client.status()
        elif line[0] == "report":
            unconfirmed = {int(s) for s in line[2].split(",")} if len(line) > 2 else set()
            answer = client.report(int(line[1]), unconfirmed)
        else:
            answer = {"error": f"unknown command {line[0]!r}"}
        print(json.dumps(answer), flush=True)
    client.close()
    await asyncio.sleep(0.05)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--kind", choices=sorted(KINDS), required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=200, help="connects in flight")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to open one")
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
