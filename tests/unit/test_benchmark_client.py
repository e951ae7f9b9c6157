"""The benchmark load client counts what arrives correctly, however the bytes are split."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from benchmarks import latency, wsframes
from benchmarks.events import EVENT_SIZE, PROBE_SEQ, decode, encode
from benchmarks.loadclient import Connection, PubSubConnection, SSEConnection, Totals, WSConnection


class Transport:
    """Collects what a connection writes, as an asyncio transport would send it."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, chunks: list[bytes]) -> None:
        self.written.extend(chunks)

    def close(self) -> None:
        self.closed = True


def connect(kind: type[Connection]) -> tuple[Connection, Transport]:
    conn = kind(Totals(), "127.0.0.1:1", "/stream")
    transport = Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def sse_frame(seq: int, *, crlf: bool = False) -> bytes:
    end = "\r\n" if crlf else "\n"
    body = encode(seq).decode()
    return f"id: {seq}{end}data: {body}{end}{end}".encode()


def ws_text(payload: bytes) -> bytes:
    size = len(payload)
    head = bytes([0x81, size]) if size < 126 else bytes([0x81, 126]) + size.to_bytes(2, "big")
    return head + payload


def feed(conn: Connection, data: bytes, piece: int) -> None:
    for start in range(0, len(data), piece):
        conn.data_received(data[start : start + piece])


def test_events_are_the_advertised_size_and_decode() -> None:
    body = encode(42, 1_700_000_000_000_000)
    assert len(body) == EVENT_SIZE
    assert decode(body) == (42, 1_700_000_000_000_000)


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("piece", [1, 7, 10_000])
async def test_sse_counts_every_event_whatever_the_read_sizes(crlf: bool, piece: int) -> None:
    conn, _ = connect(SSEConnection)
    stream = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n: open\n\n"
    stream += sse_frame(PROBE_SEQ, crlf=crlf) + b"".join(sse_frame(n, crlf=crlf) for n in range(50))
    feed(conn, stream, piece)

    assert conn.ready.done() and conn.primed
    assert conn.received == 50
    assert (conn.gaps(set()), conn.undelivered(50, set()), conn.duplicates) == (0, 0, 0)
    assert len(conn.totals.latencies) == 50


async def test_sse_books_gaps_late_events_and_duplicates() -> None:
    conn, _ = connect(SSEConnection)
    conn.data_received(b"HTTP/1.1 200 OK\r\n\r\n")
    for seq in (0, 1, 4, 2, 4, 5):  # 3 never comes, 2 comes late, 4 comes twice
        conn.data_received(sse_frame(seq))

    assert conn.received == 5
    assert conn.duplicates == 1
    assert conn.gaps(set()) == 1
    assert conn.gaps({3}) == 0  # the server never confirmed 3: not the connection's loss
    assert conn.undelivered(8, set()) == 2  # 6 and 7
    assert conn.undelivered(8, {7}) == 1


async def test_sse_refused_stream_fails_the_connection() -> None:
    conn, transport = connect(SSEConnection)
    conn.data_received(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
    with pytest.raises(ConnectionError, match="404"):
        await conn.ready
    assert transport.closed


@pytest.mark.parametrize("piece", [1, 3, 10_000])
async def test_websocket_frames_count_across_splits_and_pings_get_pongs(piece: int) -> None:
    conn, transport = connect(WSConnection)
    assert transport.written[0].startswith(b"GET /stream HTTP/1.1\r\n")
    stream = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    stream += ws_text(encode(PROBE_SEQ)) + bytes([0x89, 2]) + b"hi"
    stream += b"".join(ws_text(encode(n)) for n in range(20))
    feed(conn, stream, piece)

    assert conn.primed and conn.received == 20 and conn.gaps(set()) == 0
    assert bytes([0x8A, 0x82, 0, 0, 0, 0]) + b"hi" in transport.written


async def test_websocket_close_frame_is_answered_and_noted() -> None:
    conn, transport = connect(WSConnection)
    conn.data_received(b"HTTP/1.1 101 Switching Protocols\r\n\r\n" + bytes([0x88, 2]) + b"\x03\xe8")
    assert conn.closed_by_server and transport.closed


def test_walk_stops_at_an_incomplete_frame() -> None:
    frames = ws_text(b"x" * 200) + ws_text(b"y" * 10)
    used, others = wsframes.walk(frames[:-3])
    assert used == len(ws_text(b"x" * 200)) and others == []


async def test_pubsub_subscribes_then_answers_each_notify() -> None:
    conn, transport = connect(PubSubConnection)
    conn.data_received(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    assert b'"method": "subscribe"' in transport.written[-1]
    conn.data_received(ws_text(b'{"response":{"result":true,"call_id":"subscribe"}}'))
    assert conn.ready.done()
    notify = b'{"request":{"method":"notify","arguments":{"data":%s},"call_id":"abc"}}' % encode(0)
    conn.data_received(ws_text(notify))

    assert conn.received == 1
    assert transport.written[-1].endswith(
        b'{"response":{"result":"None","result_type":"str","call_id":"abc"}}'
    )


def test_latency_buckets_keep_two_significant_digits_and_percentiles_follow() -> None:
    samples = list(range(1, 100_001))
    hist = latency.histogram(samples)
    assert len(hist) < 1_200
    for fraction, exact in ((0.5, 50_000), (0.99, 99_000)):
        found = latency.percentile(hist, fraction)
        assert found is not None and abs(found - exact) / exact < 0.01
    summary: dict[str, Any] = latency.summary(latency.merge([hist, {"5": 1}]))
    assert summary["p50_ms"] == pytest.approx(50, rel=0.01)


async def test_connection_lost_before_opening_fails_ready() -> None:
    conn, _ = connect(SSEConnection)
    conn.connection_lost(None)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(conn.ready, 1)
