"""The delivery path's own HTTP/1.1: answers framed every way RFC 9112 allows, read over real
sockets from a server that writes raw bytes, and requests that cannot smuggle a header."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import h11
import pytest

from fastapi_streaming.websub.http1 import (
    ANSWER_BODY_LIMIT,
    ANSWER_HEAD_LIMIT,
    AnswerReader,
    ConnectionDropped,
    InvalidAnswer,
    request_head,
)
from fastapi_streaming.websub.pool import Origin, OriginPool, send

pytestmark = pytest.mark.anyio

HEAD = request_head(b"POST", b"/cb?x=1", [(b"host", b"127.0.0.1"), (b"content-length", b"2")])


def read_whole(answer: bytes, step: int) -> AnswerReader:
    """Feed ``answer`` ``step`` bytes at a time (every split point of a real stream)."""
    reader = AnswerReader()
    reader.start()
    for at in range(0, len(answer), step):
        reader.feed(answer[at : at + step])
    return reader


FRAMINGS = {
    "length": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, True),
    "no reason phrase": (b"HTTP/1.1 204\r\n\r\n", 204, True),
    "no content": (b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n", 204, True),
    "chunked": (
        b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1A\r\n" + b"x" * 26 + b"\r\n0\r\nTrailer: t\r\n\r\n",
        202,
        True,
    ),
    "interim answers first": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        200,
        True,
    ),
    "connection close": (
        b"HTTP/1.1 500 Oops\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\nx",
        500,
        False,
    ),
    "HTTP/1.0": (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, False),
    "length beside chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        200,
        False,
    ),
    "bytes past the answer": (b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204", 204, False),
}


@pytest.mark.parametrize("step", [1, 7, 100_000])
@pytest.mark.parametrize("framing", list(FRAMINGS))
def test_an_answer_is_read_whole_however_it_is_framed_and_split(framing: str, step: int) -> None:
    answer, status, keep_alive = FRAMINGS[framing]
    reader = read_whole(answer, step)
    assert (reader.done, reader.status, reader.keep_alive) == (True, status, keep_alive)
    if framing == "length" or framing == "chunked":
        # Only the last byte completes it.
        partial = AnswerReader()
        partial.start()
        assert partial.feed(answer[:-1]) is False
        assert partial.feed(answer[-1:]) is True


def test_an_answer_without_a_length_ends_with_the_connection() -> None:
    reader = read_whole(b"HTTP/1.1 200 OK\r\n\r\nsome body", 4)
    assert not reader.done
    assert reader.end_of_stream()
    assert (reader.done, reader.status, reader.keep_alive) == (True, 200, False)
    cut = read_whole(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", 4)
    assert not cut.end_of_stream()


def test_a_body_past_the_limit_ends_the_read_with_the_status() -> None:
    reader = AnswerReader()
    reader.start()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (10 * ANSWER_BODY_LIMIT)
    assert reader.feed(head + b"x" * ANSWER_BODY_LIMIT) is False
    assert reader.feed(b"x") is True
    assert (reader.status, reader.done, reader.keep_alive) == (200, False, False)


INVALID = {
    "not HTTP": b"SSH-2.0-OpenSSH\r\n\r\n",
    "HTTP/2 status line": b"HTTP/2 200\r\n\r\n",
    "short status": b"HTTP/1.1 20 OK\r\n\r\n",
    "folded header": b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    "space before colon": b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
    "conflicting lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    "negative length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "gzip framing": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    "bad chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "chunk overrun": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
    "switching protocols": b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    "oversized head": b"HTTP/1.1 200 OK\r\nX: " + b"a" * ANSWER_HEAD_LIMIT + b"\r\n\r\n",
}


@pytest.mark.parametrize("answer", list(INVALID))
def test_an_invalid_answer_is_refused(answer: str) -> None:
    with pytest.raises(InvalidAnswer):
        read_whole(INVALID[answer], 3)


def test_a_request_head_is_what_an_http_server_reads() -> None:
    head = request_head(
        b"POST", b"/a%20b/cb?x=1", [(b"host", b"h.example:8443"), (b"content-length", b"2")]
    )
    server = h11.Connection(h11.SERVER)
    server.receive_data(head + b"{}")
    request = server.next_event()
    assert isinstance(request, h11.Request)
    assert (request.method, request.target) == (b"POST", b"/a%20b/cb?x=1")
    assert list(request.headers) == [(b"host", b"h.example:8443"), (b"content-length", b"2")]
    assert server.next_event() == h11.Data(data=b"{}")


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        (b"/cb", [(b"content-type", b"text/plain\r\nx-injected: 1")]),
        (b"/cb", [(b"content-type", b"text/plain\nx: 1")]),
        (b"/cb", [(b"content type", b"text/plain")]),
        (b"/cb HTTP/1.1\r\nx: 1\r\n\r\nGET /", []),
    ],
)
def test_a_request_that_would_smuggle_a_header_is_not_sent(
    target: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    with pytest.raises(InvalidAnswer):
        request_head(b"POST", target, headers)


@asynccontextmanager
async def raw_server(
    answer: Callable[[int], bytes | None], *, close: bool = False
) -> AsyncIterator[OriginPool]:
    """A server that answers the n-th request on a connection with ``answer(n)`` (None:
    close without answering; ``close``: close after each answer), and a pool to it."""
    served: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        count = 0
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                data = answer(count)
                count += 1
                served.append(count)
                if data is None:
                    return
                writer.write(data)
                await writer.drain()
                if close:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = OriginPool(Origin("http", "127.0.0.1", port, "127.0.0.1"), 4, None)
    try:
        yield pool
    finally:
        pool.close()
        server.close()
        await server.wait_closed()


async def post(pool: OriginPool) -> int:
    deadline = asyncio.get_running_loop().time() + 5
    return await send(pool, deadline=deadline, keepalive=4.0, head=HEAD, body=b"{}")


async def test_chunked_answers_keep_the_connection_for_the_next_request() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    async with raw_server(lambda n: chunked) as pool:
        assert [await post(pool) for _ in range(5)] == [200] * 5
        assert pool.connects == 1


async def test_an_answer_delimited_by_the_close_is_read_and_not_reused() -> None:
    until_close = b"HTTP/1.1 202 Accepted\r\n\r\nthe body"
    async with raw_server(lambda n: until_close, close=True) as pool:
        assert [await post(pool) for _ in range(3)] == [202] * 3
        assert pool.connects == 3


async def test_connection_close_answers_open_a_connection_each() -> None:
    close = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    async with raw_server(lambda n: close) as pool:
        assert [await post(pool) for _ in range(3)] == [204] * 3
        assert pool.connects == 3


async def test_a_dropped_kept_alive_connection_gets_the_request_again() -> None:
    ok = b"HTTP/1.1 204 No Content\r\n\r\n"
    async with raw_server(lambda n: ok if n < 2 else None) as pool:
        assert [await post(pool) for _ in range(5)] == [204] * 5
        assert pool.connects == 3


async def test_an_invalid_answer_fails_the_request_and_its_connection() -> None:
    async with raw_server(lambda n: b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n") as pool:
        with pytest.raises(InvalidAnswer):
            await post(pool)
        assert pool.idle == [] and pool.opened == 0


async def test_a_connection_that_ends_mid_answer_fails_the_request() -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"
    async with raw_server(lambda n: cut, close=True) as pool:
        with pytest.raises(ConnectionDropped) as failure:
            await post(pool)
        assert failure.value.answered and not failure.value.reused
        assert pool.opened == 0
