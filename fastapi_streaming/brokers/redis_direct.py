"""A Redis connection whose commands cost as few turns of the event loop as a round trip can.

redis-py's pooled commands and pipelines take about nine turns of the event loop from the call
to the reply being handed back (a task for the pipeline, a health check that waits out a zero
timeout, the connection's checkout and release, a reader task between the socket and the
caller). When the loop fans events out to a thousand clients, each turn lasts milliseconds, and
a publisher that waits for its acknowledgement before it sends the next (every HTTP/1.1 client:
uvicorn answers a connection's requests one at a time) was held to a few dozen events per
second, each of which then reached every client in a write of its own.

Here a command is written to the socket at once, and the protocol hands each reply to its
caller as soon as the socket delivers it (Redis answers in the order the commands went out):
about two turns per command on a busy loop. Commands used to wait for the next turn so that
those of one turn went out in one write; that cost every publish a turn, and an HTTP publisher
waits for its acknowledgement before it sends the next, so fewer events reached the fan-out per
turn and each client got them in more, smaller writes. What Redis sends back in the meantime is
still read in one go (:mod:`.redis`), and the fan-out gathers what arrives over a few turns.

The replies are parsed here (RESP2: the five types), and the connection is opened here from
the URL redis-py would take (host and port or a UNIX socket, user name and password, database,
TLS with ``rediss://``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from redis.asyncio.connection import parse_url
from redis.exceptions import ResponseError

#: How long opening the connection (and its handshake) may take.
CONNECT_TIMEOUT = 10.0

Reply = bytes | int | list[Any] | ResponseError | None


class DirectConnection:
    """One Redis connection for commands whose callers wait for nothing but their own reply.

    Commands go out in the order ``execute`` was called, each as soon as it is called.
    ``lost`` is called once with the error when the connection fails; every command waiting
    then and every one sent afterwards raises :class:`ConnectionError` until ``connect`` is
    called again (the backend reconnects as a whole). A reply that takes longer than
    ``timeout`` seconds counts as a failed connection: Redis, or the way to it, is stuck.
    """

    def __init__(
        self, url: str, lost: Callable[[BaseException], None], *, timeout: float | None = None
    ) -> None:
        self._url = url
        self._lost = lost
        self._timeout = timeout
        self._protocol: _RespProtocol | None = None
        self._watchdog: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        options: dict[str, Any] = dict(parse_url(self._url))
        loop = asyncio.get_running_loop()
        if "path" in options:
            opening = loop.create_unix_connection(_RespProtocol, options["path"])
        else:
            opening = loop.create_connection(
                _RespProtocol,
                options.get("host", "localhost"),
                options.get("port", 6379),
                ssl=_tls(options) if options.get("connection_class") else None,
            )
        _, protocol = await asyncio.wait_for(opening, CONNECT_TIMEOUT)
        try:
            await asyncio.wait_for(self._handshake(protocol, options), CONNECT_TIMEOUT)
        except BaseException:
            protocol.close()
            raise
        protocol.on_lost = self._lost  # from now on, a loss is the backend's to handle
        self._protocol = protocol
        if self._timeout is not None:
            self._watchdog = asyncio.create_task(self._watch(self._timeout), name="redis watchdog")

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply (a Redis error reply is raised)."""
        if self._protocol is None:
            raise ConnectionError("the Redis connection is not open")
        return await self._protocol.execute(args)

    @staticmethod
    async def _handshake(protocol: _RespProtocol, options: dict[str, Any]) -> None:
        password = options.get("password")
        if password is not None:
            user = options.get("username")
            await protocol.execute(("AUTH", user, password) if user else ("AUTH", password))
        if options.get("db"):
            await protocol.execute(("SELECT", options["db"]))

    async def _watch(self, timeout: float) -> None:
        """Fail the connection when the oldest command has waited longer than ``timeout``:
        one check a second for all of them, instead of a timer per command."""
        while True:
            await asyncio.sleep(min(1.0, timeout / 2))
            protocol = self._protocol
            if protocol is not None and protocol.oldest_wait() > timeout:
                protocol.fail(TimeoutError(f"Redis did not answer within {timeout} s"))


class _RespProtocol(asyncio.Protocol):
    """Writes commands, reads replies, and pairs them in order."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        #: Told of the first failure (not of a deliberate close).
        self.on_lost: Callable[[BaseException], None] = _ignore
        self._transport: asyncio.Transport | None = None
        self._error: BaseException | None = None
        self._buffer = bytearray()
        #: The callers waiting for a reply, in the order their commands went out, with when.
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def execute(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self._loop.create_future()
        if self._error is not None:
            future.set_exception(ConnectionError(f"lost the Redis connection: {self._error!r}"))
            return future
        if self._transport is not None:
            self._transport.write(_pack(args))
        self._waiting.append((future, self._loop.time()))
        return future

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while True:
            try:
                parsed = _parse(buffer, start)
            except (ValueError, IndexError) as exc:
                self.fail(ConnectionError(f"Redis sent a reply that is not RESP: {exc}"))
                return
            if parsed is None:
                break
            reply, start = parsed
            if not self._waiting:
                self.fail(ConnectionError(f"Redis sent a reply nobody asked for: {reply!r}"))
                return
            future, _ = self._waiting.popleft()
            if future.done():  # its caller stopped waiting
                continue
            if isinstance(reply, ResponseError):
                future.set_exception(reply)
            else:
                future.set_result(reply)
        del buffer[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or ConnectionError("Redis closed the connection"))

    def oldest_wait(self) -> float:
        return self._loop.time() - self._waiting[0][1] if self._waiting else 0.0

    def fail(self, error: BaseException) -> None:
        """Fail every waiting caller and close; report the first failure."""
        if self._error is not None:
            return
        self._error = error
        waiting, self._waiting = self._waiting, deque()
        for future, _ in waiting:
            if not future.done():
                future.set_exception(ConnectionError(f"lost the Redis connection: {error!r}"))
        if self._transport is not None:
            self._transport.abort()
        self.on_lost(error)

    def close(self) -> None:
        """Close without reporting a loss (the owner is disconnecting)."""
        self.on_lost = _ignore
        self.fail(ConnectionError("the Redis connection was closed"))


def _ignore(error: BaseException) -> None:
    """What a deliberately closed connection reports its end to."""


def _pack(args: tuple[Any, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            value = arg
        elif isinstance(arg, str):
            value = arg.encode()
        elif isinstance(arg, int | float):
            value = repr(arg).encode()
        else:
            raise TypeError(f"cannot send a {type(arg).__name__} to Redis: {arg!r}")
        parts.append(b"$%d\r\n%s\r\n" % (len(value), value))
    return b"".join(parts)


def _parse(buffer: bytearray, start: int) -> tuple[Reply, int] | None:
    """The reply that starts at ``start`` and where the next one starts, or None when the
    buffer does not hold all of it yet."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return None
    kind, line = buffer[start], bytes(buffer[start + 1 : end])
    after = end + 2
    if kind == 0x2B:  # + simple string
        return line, after
    if kind == 0x2D:  # - error
        return ResponseError(line.decode(errors="replace")), after
    if kind == 0x3A:  # : integer
        return int(line), after
    if kind == 0x24:  # $ bulk string
        size = int(line)
        if size < 0:
            return None, after
        if len(buffer) < after + size + 2:
            return None
        return bytes(buffer[after : after + size]), after + size + 2
    if kind == 0x2A:  # * array
        count = int(line)
        if count < 0:
            return None, after
        items: list[Any] = []
        for _ in range(count):
            parsed = _parse(buffer, after)
            if parsed is None:
                return None
            item, after = parsed
            items.append(item)
        return items, after
    raise ValueError(f"unknown reply type {chr(kind)!r}")


def _tls(options: dict[str, Any]) -> ssl.SSLContext:
    """The TLS context of a ``rediss://`` URL, with redis-py's options that say how to check."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    requirement = str(options.get("ssl_cert_reqs", "required")).lower()
    if requirement == "none":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif requirement == "optional":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_OPTIONAL
    if options.get("ssl_check_hostname") is False:
        context.check_hostname = False
    return context
