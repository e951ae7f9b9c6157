"""The benchmark's WebSub receiver answers like a subscriber and counts what it must."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, cast

from benchmarks.events import PROBE_SEQ, encode
from benchmarks.websub_receiver import Callbacks, Tally, secret_for


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def delivery(callback: int, event_id: str, body: bytes, *, secret: bytes | None = None) -> bytes:
    key = secret if secret is not None else secret_for(callback)
    signature = hmac.new(key, body, hashlib.sha256).hexdigest()
    head = (
        f"POST /cb/{callback} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {len(body)}\r\n"
        f"x-hub-event-id: {event_id}\r\nx-hub-signature: sha256={signature}\r\n\r\n"
    )
    return head.encode() + body


def connected() -> tuple[Callbacks, Transport, Tally]:
    tally = Tally()
    protocol = Callbacks(tally)
    transport = Transport()
    protocol.connection_made(cast(Any, transport))
    return protocol, transport, tally


def test_verification_echoes_the_challenge_and_counts_the_subscriber() -> None:
    protocol, transport, tally = connected()
    protocol.data_received(b"GET /cb/7?hub.mode=subscribe&hub.challenge=abc123 HTTP/1.1\r\n\r\n")
    assert transport.written == [
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 6\r\n\r\nabc123"
    ]
    assert tally.status()["verified"] == 1


def test_deliveries_split_anywhere_are_counted_once_and_signatures_checked() -> None:
    protocol, transport, tally = connected()
    stream = (
        delivery(1, "e1", encode(0))
        + delivery(1, "e1", encode(0))  # a duplicate
        + delivery(2, "e1", encode(0), secret=b"wrong")
        + delivery(3, "p", encode(PROBE_SEQ))
    )
    for start in range(0, len(stream), 37):  # in pieces, as TCP may deliver them
        protocol.data_received(stream[start : start + 37])
    status = tally.status()
    assert len(transport.written) == 4
    assert (status["deliveries"], status["duplicates"]) == (2, 1)
    assert status["bad_signatures"] == 1
    assert status["primed"] == 1
    assert sum(status["histogram"].values()) == 2
