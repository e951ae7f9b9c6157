"""Publisher: POST ``rate`` events per second for ``duration`` seconds, on schedule.

Run as ``python -m benchmarks.publisher --port P --path /publish --rate R --duration T``; it
prints one JSON line with what it sent. Events are numbered ``0..N-1`` and stamped at the moment
they are written, so latency includes the server's own publish path, as a real producer's would.

Requests are pipelined over a few keep-alive connections (bare asyncio, no HTTP client), so the
publisher itself costs little and never waits for one answer before sending the next event.
Only when a connection has ``--inflight`` requests unanswered does it hold back: a server that
cannot take events as fast as they are offered shows up as a lower ``published`` rate (the
publisher stops at ``duration`` seconds whatever it managed to send).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from collections import deque
from typing import cast

from .events import EVENT_SIZE, PROBE_SEQ, encode, now_us

HEADER_END = b"\r\n\r\n"


class PublishConnection(asyncio.Protocol):
    def __init__(self, head: bytes) -> None:
        self.head = head
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        #: Sequence numbers sent and not answered yet, oldest first (HTTP/1.1 answers in order).
        self.pending: deque[int] = deque()
        self.rejected_seqs: list[int] = []
        self.ok = 0
        self.errors = 0
        self.statuses: dict[int, int] = {}
        self.answered = asyncio.Event()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    @property
    def inflight(self) -> int:
        return len(self.pending)

    def send(self, seq: int) -> None:
        assert self.transport is not None
        self.pending.append(seq)
        self.transport.write(self.head + encode(seq))

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        while True:
            end = buf.find(HEADER_END)
            if end < 0:
                break
            head = buf[:end].lower()
            length = content_length(head)
            if len(buf) < end + 4 + length:
                break
            status = int(head[9:12])
            self.statuses[status] = self.statuses.get(status, 0) + 1
            seq = self.pending.popleft()
            if 200 <= status < 300:
                self.ok += 1
            else:
                self.errors += 1
                self.rejected_seqs.append(seq)
            buf = buf[end + 4 + length :]
        self.buf = buf
        self.answered.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.answered.set()


async def wait_for_answer(conns: list[PublishConnection], timeout: float) -> None:
    """Every connection has its fill of unanswered requests: wait for any answer."""
    for conn in conns:
        conn.answered.clear()
    waiters = [asyncio.ensure_future(c.answered.wait()) for c in conns]
    await asyncio.wait(waiters, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()


def content_length(head: bytes) -> int:
    at = head.find(b"content-length:")
    if at < 0:
        return 0
    stop = head.find(b"\r\n", at)
    return int(head[at + 15 : stop if stop >= 0 else len(head)])


def request_head(port: int, path: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    ).encode()


async def publish(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    head = request_head(args.port, args.path) % EVENT_SIZE
    conns: list[PublishConnection] = []
    for _ in range(args.connections):
        _, conn = await loop.create_connection(
            lambda: PublishConnection(head), "127.0.0.1", args.port
        )
        conns.append(conn)
    total = round(args.rate * args.duration)
    start = time.perf_counter()
    stop_at = start + args.duration
    start_us = now_us()
    sent = 0
    turn = 0
    behind = False
    while sent < total and not all(c.lost for c in conns):
        now = time.perf_counter()
        if now >= stop_at:
            behind = True  # the server did not take the events as fast as they were due
            break
        due = min(total, int((now - start) * args.rate) + 1)
        while sent < due:
            ready = [c for c in conns if not c.lost and c.inflight < args.inflight]
            if not ready:
                await wait_for_answer(conns, stop_at - time.perf_counter())
                break
            conn = ready[turn % len(ready)]
            turn += 1
            conn.send(sent)
            sent += 1
        next_due = start + sent / args.rate
        await asyncio.sleep(max(0.0, next_due - time.perf_counter()))
    end_us = now_us()
    deadline = time.perf_counter() + args.drain
    while any(c.inflight and not c.lost for c in conns) and time.perf_counter() < deadline:  # noqa: ASYNC110 - a bounded poll of plain counters
        await asyncio.sleep(0.01)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    statuses: dict[int, int] = {}
    for conn in conns:
        for status, count in conn.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    elapsed = (end_us - start_us) / 1e6
    return {
        "sent": sent,
        "accepted": sum(c.ok for c in conns),
        "rejected": sum(c.errors for c in conns),
        "unanswered": sum(c.inflight for c in conns),
        # Events the server did not confirm: clients cannot be blamed for missing them.
        "unconfirmed_seqs": sorted(
            [seq for c in conns for seq in c.pending] + [s for c in conns for s in c.rejected_seqs]
        ),
        "statuses": statuses,
        "start_us": start_us,
        "end_us": end_us,
        "rate": sent / elapsed if elapsed > 0 else 0.0,
        "behind": behind,
    }


def post_probe(port: int, path: str, timeout: float = 5.0) -> int:
    """Send one priming event (``seq`` -1) and return the HTTP status; blocking, for runners."""
    body = encode(PROBE_SEQ)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request_head(port, path) % len(body) + body)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer[9:12]) if answer.startswith(b"HTTP/1.1 ") else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--inflight", type=int, default=256, help="unanswered per connection")
    parser.add_argument("--drain", type=float, default=2.0, help="seconds to wait for answers")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(publish(args))
    else:
        result = uvloop.run(publish(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
