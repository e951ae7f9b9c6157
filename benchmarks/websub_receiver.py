"""Many WebSub subscribers in one cheap process: ``python -m benchmarks.websub_receiver``.

Every callback ``/cb/<n>`` on one 127.0.0.1 port is one subscriber with its own secret
(``secret-<n>``). The receiver answers verification requests with their challenge, answers
every delivery ``204``, checks its ``X-Hub-Signature`` against the body, and counts per
subscriber which events arrived (duplicates too) and how long after their send time.

With ``--cert`` and ``--key`` it serves HTTPS (``benchmarks.selfsigned`` makes a pair).

Plain asyncio protocols over uvloop, not an HTTP framework, so that a thousand subscribers do
not cost more CPU than the hub they measure. The runner drives it over stdin/stdout like the
load client: ``status`` and ``exit``, one JSON line per answer.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import ssl
import sys
from collections import Counter
from typing import cast
from urllib.parse import parse_qs, urlsplit

from . import latency
from .events import FIELDS, PROBE_SEQ, now_us

NO_CONTENT = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"


def secret_for(callback: int) -> bytes:
    return b"secret-%d" % callback


def ok(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n"
    return head % len(body) + body


class Tally:
    """What every subscriber of this process received."""

    def __init__(self) -> None:
        self.verified: set[int] = set()
        self.seen: set[tuple[int, str]] = set()
        self.deliveries = 0
        #: Every delivery request, probes and repeats included.
        self.arrivals = 0
        self.duplicates = 0
        self.bad_signatures = 0
        self.primed: set[int] = set()
        self.first_us = 0
        self.last_us = 0
        self.histogram: Counter[int] = Counter()

    def verification(self, callback: int, query: dict[str, list[str]]) -> bytes:
        if query.get("hub.mode") == ["subscribe"]:
            self.verified.add(callback)
        return ok(query.get("hub.challenge", [""])[0].encode())

    def delivery(self, callback: int, headers: dict[str, str], body: bytes) -> None:
        arrived = now_us()
        self.arrivals += 1
        expected = hmac.new(secret_for(callback), body, hashlib.sha256).hexdigest()
        if headers.get("x-hub-signature") != f"sha256={expected}":
            self.bad_signatures += 1
        key = (callback, headers.get("x-hub-event-id", ""))
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        found = FIELDS.search(body)
        if found is None:
            return
        seq, sent = int(found[1]), int(found[2])
        if seq == PROBE_SEQ:
            self.primed.add(callback)
            return
        self.deliveries += 1
        self.first_us = self.first_us or arrived
        self.last_us = arrived
        self.histogram[latency.bucket(arrived - sent)] += 1

    def status(self) -> dict[str, object]:
        return {
            "verified": len(self.verified),
            "deliveries": self.deliveries,
            "arrivals": self.arrivals,
            "primed": len(self.primed),
            "duplicates": self.duplicates,
            "bad_signatures": self.bad_signatures,
            "first_us": self.first_us,
            "last_us": self.last_us,
            "histogram": dict(self.histogram),
        }


class Callbacks(asyncio.Protocol):
    """One keep-alive connection from the hub: parse requests, answer each in order."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (request := self._next_request()) is not None:
            assert self.transport is not None
            self.transport.write(self._answer(*request))

    def _next_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        size = int(headers.get("content-length", "0"))
        if len(self.buffer) < end + 4 + size:
            return None
        body = bytes(self.buffer[end + 4 : end + 4 + size])
        del self.buffer[: end + 4 + size]
        return method, target, headers, body

    def _answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        url = urlsplit(target)
        callback = int(url.path.rsplit("/", 1)[-1])
        if method == "GET":
            return self.tally.verification(callback, parse_qs(url.query))
        self.tally.delivery(callback, headers, body)
        return NO_CONTENT


async def serve(port: int, tls: ssl.SSLContext | None = None) -> None:
    tally = Tally()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Callbacks(tally), "127.0.0.1", port, backlog=4096, ssl=tls
    )
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps(tally.status()), flush=True)
    while True:
        line = (await reader.readline()).decode().split()
        if not line or line[0] == "exit":
            break
        answer = tally.status() if line[0] == "status" else {"error": f"unknown {line[0]!r}"}
        print(json.dumps(answer), flush=True)
    server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--key", help="the certificate's private key (PEM)")
    args = parser.parse_args(argv)
    import uvloop

    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    uvloop.run(serve(args.port, tls))


if __name__ == "__main__":
    main()
