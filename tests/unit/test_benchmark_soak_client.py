"""The soak client records every event's number and id, and gap signals, however bytes split."""

from __future__ import annotations

import argparse
import json

import pytest

from benchmarks.events import encode
from benchmarks.soakclient import Client, Pool, SSEConnection, WSConnection


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        pass


def make_client(kind: str) -> Client:
    args = argparse.Namespace(
        kind=kind, port=1, connections=1, rooms=1, prefix="room", offset=0, concurrency=1
    )
    return Pool(args).clients[0]


def ws_text(payload: bytes) -> bytes:
    size = len(payload)
    head = bytes([0x81, size]) if size < 126 else bytes([0x81, 126]) + size.to_bytes(2, "big")
    return head + payload


def envelope(seq: int, event_id: str) -> bytes:
    head = {"type": "event", "topic": "/bench/room-0", "id": event_id, "time": "t"}
    text = json.dumps(head, separators=(",", ":"))[:-1] + ',"data":' + encode(seq).decode() + "}"
    return text.encode()


@pytest.mark.parametrize("piece", [1, 7, 1000])
async def test_sse_events_and_gaps_are_recorded(piece: int) -> None:
    client = make_client("sse")
    conn = SSEConnection(client, "127.0.0.1:1", "/s", "last-0")
    conn.connection_made(Transport())  # type: ignore[arg-type]
    stream = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"
    stream += b'event: gap\ndata: {"last_event_id":"last-0"}\n\n'
    for seq in (3, 4, 6):
        stream += b"\r\nd2\r\nid: id-%d\ndata: " % seq + encode(seq) + b"\n\n"
    stream += b": heartbeat\n\n"
    for start in range(0, len(stream), piece):
        conn.data_received(stream[start : start + piece])
    assert b"Last-Event-ID: last-0" in conn.request()
    assert client.gaps == 1
    assert [seq for seq in range(8) if client.has(seq)] == [3, 4, 6]
    assert client.last_id == "id-6" and client.first_seq == 3


@pytest.mark.parametrize("piece", [1, 5, 1000])
async def test_websocket_events_carry_their_ids_for_the_resume(piece: int) -> None:
    client = make_client("ws")
    conn = WSConnection(client, "127.0.0.1:1", "/streams/ws", "last-0")
    transport = Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    stream = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    stream += ws_text(b'{"type":"ack","id":1}')
    stream += ws_text(b'{"type":"gap","topic":"/bench/room-0"}')
    stream += ws_text(envelope(7, "id-7")) + ws_text(envelope(7, "id-7"))
    stream += ws_text(envelope(9, "id-9"))
    for start in range(0, len(stream), piece):
        conn.data_received(stream[start : start + piece])
    subscribe = json.loads(transport.written[-1][6:])
    assert subscribe == {
        "type": "subscribe",
        "id": 1,
        "topic": "/bench/room-0",
        "last_event_id": "last-0",
    }
    assert client.gaps == 1 and client.duplicates == 1
    assert client.last_id == "id-9"
    assert [seq for seq in range(10) if client.has(seq)] == [7, 9]


async def test_the_report_counts_accepted_events_a_client_missed_after_its_first() -> None:
    client = make_client("sse")
    for seq in (2, 3, 5):
        client.mark(seq, b"x")
    client.resumes = 1
    report = client.pool.report({"room-0": [1, 2, 3, 4, 5, 6]})
    assert report["missed"]["resumed_silent"] == {4: 1, 6: 1}
