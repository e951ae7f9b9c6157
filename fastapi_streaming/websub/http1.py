"""One keep-alive HTTP/1.1 connection from the hub to a callback's checked address.

The hub POSTs thousands of small requests a second, mostly to few hosts, and needs only each
answer's status. A general-purpose client spends more CPU per request on its machinery than the
request costs (httpx's pool checks every pooled connection on every request; h11 builds and
validates an event object per part of each message, half of the delivery path's HTTP work), so
the delivery path speaks HTTP/1.1 itself: the request goes out as bytes built once
(:func:`request_head`, header values checked there), and :class:`AnswerReader` reads the answer
by RFC 9112's framing rules: a status line and headers of at most :data:`ANSWER_HEAD_LIMIT`
bytes, interim 1xx answers skipped, no body for 204 and 304, then ``Transfer-Encoding:
chunked``, ``Content-Length``, or the end of the connection. The body is read and dropped, up
to :data:`ANSWER_BODY_LIMIT` (beyond that the connection is closed instead of reading on). An
asyncio protocol moves the bytes, one request at a time per connection.
"""

from __future__ import annotations

import asyncio
import re

#: Bytes of an answer's body read and dropped before the connection is closed instead.
ANSWER_BODY_LIMIT = 64 * 1024
#: Largest answer head (status line and headers) accepted.
ANSWER_HEAD_LIMIT = 16 * 1024

_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [\t -~\x80-\xff]*)?")
_FIELD = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\t -~\x80-\xff]*?)[ \t]*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[\t -~\x80-\xff]*)?")
#: What a request's header value may hold: no CR, LF or NUL, so no header can be injected.
_FIELD_VALUE = re.compile(rb"[\t -~\x80-\xff]*")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[!-~]+")

# Where :class:`AnswerReader` is within an answer.
_HEAD, _LENGTH, _CHUNK_LINE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, _DONE = range(8)


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
    """The callback's answer is not valid HTTP/1.1, or a request cannot be sent as such; the
    connection is closed."""


def request_head(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A request's line and headers, as sent; raises :class:`InvalidAnswer` for a name, value or
    target that would not be one (a CR or LF in a value could smuggle a header in)."""
    return request_line(method, target) + header_lines(headers) + b"\r\n"


def request_line(method: bytes, target: bytes) -> bytes:
    """A request's first line, CRLF included; checked as :func:`request_head` checks it."""
    if _TARGET.fullmatch(target) is None or _TOKEN.fullmatch(method) is None:
        raise InvalidAnswer(f"cannot send this request: bad request line {target!r}")
    return method + b" " + target + b" HTTP/1.1\r\n"


def header_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Header lines as sent, each ending in CRLF; checked as :func:`request_head` checks them.
    A head is :func:`request_line`, then header lines, then an empty line (CRLF)."""
    lines = []
    for name, value in headers:
        if _TOKEN.fullmatch(name) is None or _FIELD_VALUE.fullmatch(value) is None:
            raise InvalidAnswer(f"cannot send this request: bad header {name!r}")
        lines.append(name + b": " + value + b"\r\n")
    return b"".join(lines)


class AnswerReader:
    """Reads one answer at a time from the bytes of a connection: its status, whether it is
    complete, and whether the connection may carry another request after it."""

    def __init__(self) -> None:
        self.status = 0
        self.keep_alive = False
        #: Bytes of the answer's body seen so far.
        self.body_bytes = 0
        self._state = _HEAD
        self._buffer = b""
        self._left = 0

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def start(self) -> None:
        """Expect the answer to the request just sent."""
        self.status, self.keep_alive, self.body_bytes = 0, False, 0
        self._state, self._buffer, self._left = _HEAD, b"", 0

    def feed(self, data: bytes) -> bool:
        """Take ``data``; True once the answer is complete (or its body reached
        :data:`ANSWER_BODY_LIMIT`). Bytes past the answer's end make the connection
        unusable for another request. Raises :class:`InvalidAnswer`."""
        buffer = self._buffer + data if self._buffer else data
        self._buffer = b""
        while True:
            state = self._state
            if state == _DONE:
                if buffer:
                    self.keep_alive = False  # bytes nobody asked for: never trust them
                return True
            if state == _LENGTH:
                taken = min(len(buffer), self._left)
                self._left -= taken
                self.body_bytes += taken
                buffer = buffer[taken:]
                if self._left == 0:
                    self._state = _DONE
                    continue
            elif state == _UNTIL_CLOSE:
                self.body_bytes += len(buffer)
                buffer = b""
            elif state == _CHUNK_DATA:
                taken = min(len(buffer), self._left)
                self._left -= taken
                self.body_bytes += taken
                buffer = buffer[taken:]
                if self._left == 0:
                    self._state = _CHUNK_END
                    continue
            else:
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > ANSWER_HEAD_LIMIT:
                        raise InvalidAnswer("the callback's answer has an oversized head")
                    self._buffer = buffer
                    return False
                if state == _HEAD:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        if len(buffer) > ANSWER_HEAD_LIMIT:
                            raise InvalidAnswer("the callback's answer has an oversized head")
                        self._buffer = buffer
                        return False
                    if end > ANSWER_HEAD_LIMIT:
                        raise InvalidAnswer("the callback's answer has an oversized head")
                    self._head(buffer[:end])
                    buffer = buffer[end + 4 :]
                    continue
                line = buffer[:end]
                buffer = buffer[end + 2 :]
                if state == _CHUNK_LINE:
                    size = _CHUNK_SIZE.fullmatch(line)
                    if size is None:
                        raise InvalidAnswer("the callback's answer has a bad chunk size")
                    self._left = int(size[1], 16)
                    self._state = _CHUNK_DATA if self._left else _TRAILERS
                elif state == _CHUNK_END:
                    if line:
                        raise InvalidAnswer("the callback's answer has a chunk of the wrong size")
                    self._state = _CHUNK_LINE
                elif line:  # _TRAILERS: read and dropped, each bounded like the head
                    if _FIELD.fullmatch(line) is None:
                        raise InvalidAnswer("the callback's answer has a bad trailer")
                else:
                    self._state = _DONE
                    continue
            if self.body_bytes > ANSWER_BODY_LIMIT:
                self.keep_alive = False  # the status is known; the rest is not worth reading
                return True
            if not buffer:
                return False

    def end_of_stream(self) -> bool:
        """The connection ended: True if that completed the answer (one delimited by it)."""
        if self._state == _UNTIL_CLOSE:
            self._state = _DONE
            return True
        return self._state == _DONE

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status_line = _STATUS_LINE.fullmatch(lines[0])
        if status_line is None:
            raise InvalidAnswer(f"the callback's answer has a bad status line {lines[0][:80]!r}")
        minor, status = status_line[1], int(status_line[2])
        lengths: set[bytes] = set()
        codings: list[bytes] = []
        close = minor == b"0"  # an HTTP/1.0 answer's connection is not kept
        for line in lines[1:]:
            field = _FIELD.fullmatch(line)
            if field is None:  # obsolete line folding included (RFC 9112 5.2: reject it)
                raise InvalidAnswer(f"the callback's answer has a bad header {line[:80]!r}")
            name = field[1].lower()
            if name == b"content-length":
                lengths.update(part.strip() for part in field[2].split(b","))
            elif name == b"transfer-encoding":
                codings += (part.strip().lower() for part in field[2].split(b","))
            elif name == b"connection":
                close = close or b"close" in (part.strip().lower() for part in field[2].split(b","))
        if 100 <= status < 200:
            if status == 101:
                raise InvalidAnswer("the callback switched protocols unasked")
            return  # interim (100 Continue, 103 Early Hints): the final answer follows
        self.status = status
        self.keep_alive = not close
        if status in (204, 304):
            self._state = _DONE
        elif codings:
            if codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
                raise InvalidAnswer("the callback's answer has an unsupported transfer coding")
            # A length beside chunked framing is ignored, and such a connection not kept
            # (RFC 9112 6.3: it may be an attempt at request smuggling).
            self.keep_alive = self.keep_alive and not lengths
            self._state = _CHUNK_LINE
        elif lengths:
            if len(lengths) != 1:
                raise InvalidAnswer("the callback's answer has conflicting lengths")
            (length,) = lengths
            if not length.isdigit() or len(length) > 18:
                raise InvalidAnswer("the callback's answer has a bad Content-Length")
            self._left = int(length)
            self._state = _LENGTH if self._left else _DONE
        else:
            self.keep_alive = False  # the body ends with the connection
            self._state = _UNTIL_CLOSE


class Http1Connection(asyncio.Protocol):
    """A client connection: ``request()`` sends one request and waits for its answer's status.

    Reusable after an answer when it was read whole and neither side asked to close.
    """

    def __init__(self) -> None:
        self._reader = AnswerReader()
        self.transport: asyncio.Transport | None = None
        #: Requests this connection has answered (0: fresh).
        self.served = 0
        self.closed = False
        #: ``loop.time()`` when it was last given back to its pool.
        self.idle_since = 0.0
        self._answer: asyncio.Future[int] | None = None
        self._answered = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        answer = self._answer
        if answer is None or answer.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        self._answered = True
        reader = self._reader
        try:
            complete = reader.feed(data)
        except InvalidAnswer as exc:
            answer.set_exception(exc)
            self.close()
            return
        if complete:
            answer.set_result(reader.status)
            if not reader.keep_alive:
                self.close()

    def eof_received(self) -> bool:
        answer = self._answer
        if self._answered and answer is not None and not answer.done():
            if self._reader.end_of_stream():  # an answer delimited by the end of the connection
                answer.set_result(self._reader.status)
        # Else ``connection_lost`` follows: the connection ended before a whole answer.
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

    async def request(self, head: bytes, body: bytes) -> int:
        """Send one request (``head`` from :func:`request_head`, then ``body``) and return its
        answer's status once the whole answer was read (or its body passed the limit).

        Raises :class:`ConnectionDropped` or :class:`InvalidAnswer`; the caller bounds the time.
        """
        transport = self.transport
        if self.closed or transport is None:
            raise ConnectionDropped("the connection is closed", answered=False, reused=True)
        self._answer = answer = asyncio.get_running_loop().create_future()
        self._answered = False
        self._reader.start()
        transport.write(head + body)
        try:
            status: int = await answer
        finally:
            self._answer = None
        self.served += 1
        return status

    def ready_for_next(self) -> bool:
        """True if the last answer was read whole and nobody asked to close."""
        reader = self._reader
        return not self.closed and reader.done and reader.keep_alive

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

    def _fail(self, error: BaseException) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(error)
