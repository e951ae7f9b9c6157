"""One keep-alive HTTP/1.1 connection from the hub to a callback's checked address (h11).

The hub POSTs thousands of small requests a second, mostly to few hosts. A general-purpose
client spends more CPU per request on its machinery than the request costs (httpx's pool checks
every pooled connection on every request), so the delivery path speaks HTTP/1.1 itself: h11
does the parsing and framing, an asyncio protocol moves the bytes, one request at a time per
connection. The answer's status is all a content distribution needs; its body is read and
dropped, up to :data:`ANSWER_BODY_LIMIT` (beyond that the connection is closed instead of
reading on).
"""

from __future__ import annotations

import asyncio

import h11

#: Bytes of an answer's body read and dropped before the connection is closed instead.
ANSWER_BODY_LIMIT = 64 * 1024
#: Largest answer head (status line and headers) accepted.
ANSWER_HEAD_LIMIT = 16 * 1024


class ConnectionDropped(ConnectionError):
    """The connection ended before a complete answer arrived.

    ``answered``: some of the answer had arrived. ``reused``: the connection had served a
    request before. A reused connection that ends before any answer byte is the race of every
    keep-alive client (the callback closed the idle connection as the request left), and the
    request was not taken in: it is sent again once on a new connection.
    """

    def __init__(self, message: str, *, answered: bool, reused: bool) -> None:
        super().__init__(message)
        self.answered = answered
        self.reused = reused


class InvalidAnswer(ConnectionError):
    """The callback's answer is not valid HTTP/1.1; the connection is closed."""


class Http1Connection(asyncio.Protocol):
    """A client connection: ``request()`` sends one request and waits for its answer's status.

    Reusable after an answer when both sides finished the exchange and neither asked to close.
    """

    def __init__(self) -> None:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=ANSWER_HEAD_LIMIT)
        self.transport: asyncio.Transport | None = None
        #: Requests this connection has answered (0: fresh).
        self.served = 0
        self.closed = False
        #: ``loop.time()`` when it was last given back to its pool.
        self.idle_since = 0.0
        self._answer: asyncio.Future[int] | None = None
        self._status = 0
        self._body_bytes = 0
        self._answered = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        self._answered = True
        self._h11.receive_data(data)
        self._read_events()

    def eof_received(self) -> bool:
        if self._answered and self._answer is not None and not self._answer.done():
            self._h11.receive_data(b"")  # an answer delimited by the end of the connection
            self._read_events()
        # Else ``connection_lost`` follows: the connection ended before any answer.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(
            ConnectionDropped(
                f"the callback closed the connection before answering ({exc or 'end of stream'})",
                answered=self._answered,
                reused=self.served > 0,
            )
        )

    # -- requests --------------------------------------------------------------------------

    async def request(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> int:
        """Send one request and return its answer's status once the whole answer was read.

        Raises :class:`ConnectionDropped` or :class:`InvalidAnswer`; the caller bounds the time.
        """
        if self.closed or self.transport is None:
            raise ConnectionDropped("the connection is closed", answered=False, reused=True)
        connection = self._h11
        try:
            data = connection.send(h11.Request(method=method, target=target, headers=headers))
            data = (data or b"") + (connection.send(h11.Data(data=body)) or b"")
            data += connection.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            self.close()
            raise InvalidAnswer(f"cannot send this request: {exc}") from None
        self._answer = answer = asyncio.get_running_loop().create_future()
        self._status, self._body_bytes, self._answered = 0, 0, False
        self.transport.write(data)
        try:
            status: int = await answer
        finally:
            self._answer = None
        self.served += 1
        return status

    def ready_for_next(self) -> bool:
        """True, and set up for the next request, if both sides finished the exchange and
        nobody asked to close."""
        connection = self._h11
        if self.closed or connection.our_state is not h11.DONE:
            return False
        if connection.their_state is not h11.DONE:
            return False
        connection.start_next_cycle()
        return True

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self, error: BaseException) -> None:
        """End the request in flight with ``error`` (its deadline passed) and the connection."""
        self._fail(error)
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- answers ---------------------------------------------------------------------------

    def _read_events(self) -> None:
        connection = self._h11
        try:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Response):
                    self._status = event.status_code
                elif isinstance(event, h11.Data):
                    self._body_bytes += len(event.data)
                    if self._body_bytes > ANSWER_BODY_LIMIT:
                        # The status is known; the rest is not worth reading.
                        self._succeed(self._status)
                        self.close()
                        return
                elif isinstance(event, h11.EndOfMessage):
                    self._succeed(self._status)
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    self.close()
                    return
        except h11.RemoteProtocolError as exc:
            self._fail(InvalidAnswer(f"the callback's answer is not valid HTTP/1.1: {exc}"))
            self.close()

    def _succeed(self, status: int) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_result(status)

    def _fail(self, error: BaseException) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(error)
