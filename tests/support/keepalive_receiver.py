"""A WebSub subscriber that shows what happens on its connections: a raw asyncio server.

A framework server hides its connections; this one records which connection every request
came on, so a test can see keep-alive reuse. It can serve HTTPS (a certificate from
``benchmarks.selfsigned``), and it can drop connections the way servers do when an idle
keep-alive connection times out: after ``answers_per_connection`` answers, the next request
on that connection is read and the connection closed without an answer (and without
recording the request, as a server that closes does not process it).
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

import h11


@dataclass(frozen=True)
class Arrived:
    connection: int
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class KeepAliveReceiver:
    """Answers verifications with their challenge and deliveries with 204, on 127.0.0.1."""

    def __init__(
        self,
        *,
        tls: ssl.SSLContext | None = None,
        answers_per_connection: int | None = None,
        redirect_to: str | None = None,
    ) -> None:
        self.tls = tls
        self.answers_per_connection = answers_per_connection
        #: Answer deliveries to other paths ``302 Found`` with this ``Location``.
        self.redirect_to = redirect_to
        self.arrived: list[Arrived] = []
        self.connections = 0
        #: Requests read and dropped with their connection, unanswered.
        self.dropped = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()

    def url(self, path: str) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def deliveries(self) -> list[Arrived]:
        return [item for item in self.arrived if item.method == "POST"]

    async def wait_for_deliveries(self, count: int, timeout: float = 20) -> None:
        async def enough() -> None:
            while len(self.deliveries()) < count:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(enough(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"{len(self.deliveries())} of {count} deliveries arrived within {timeout} s"
            ) from None

    async def __aenter__(self) -> KeepAliveReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection_id = next(self._ids)
        self.connections += 1
        http = h11.Connection(h11.SERVER)
        answered = 0
        try:
            while True:
                request = await self._read_request(http, reader)
                if request is None:
                    return
                method, target, headers, body = request
                limit = self.answers_per_connection
                if limit is not None and answered >= limit:
                    self.dropped += 1
                    return  # closed as a timed-out keep-alive connection is: no answer
                url = urlsplit(target)
                self.arrived.append(Arrived(connection_id, method, url.path, headers, body))
                self._changed.set()
                if method == "GET":
                    challenge = parse_qs(url.query).get("hub.challenge", [""])[0].encode()
                    answer = h11.Response(
                        status_code=200, headers=[("content-length", str(len(challenge)))]
                    )
                    writer.write(http.send(answer) or b"")
                    writer.write(http.send(h11.Data(data=challenge)) or b"")
                elif self.redirect_to is not None and url.path != urlsplit(self.redirect_to).path:
                    moved = [("location", self.redirect_to), ("content-length", "0")]
                    writer.write(http.send(h11.Response(status_code=302, headers=moved)) or b"")
                else:
                    writer.write(http.send(h11.Response(status_code=204, headers=[])) or b"")
                writer.write(http.send(h11.EndOfMessage()) or b"")
                await writer.drain()
                answered += 1
                http.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, ssl.SSLError):
            return
        finally:
            writer.close()

    @staticmethod
    async def _read_request(
        http: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[str, str, dict[str, str], bytes] | None:
        method = target = ""
        headers: dict[str, str] = {}
        body = b""
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                http.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                method, target = event.method.decode(), event.target.decode()
                headers = {name.decode(): value.decode() for name, value in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return method, target, headers, body
            elif isinstance(event, h11.ConnectionClosed):
                return None
