"""A Redis connection that sends commands at the next turn of the event loop and pairs replies in
order.

redis-py's pooled commands and pipelines take about nine turns of the event loop from the call
to the reply being handed back (a task for the pipeline, a health check that waits out a zero
timeout, the connection's checkout and release). When the loop fans events out to a thousand
clients, each turn lasts milliseconds, and a publisher that waits for its acknowledgement
before it sends the next (every HTTP/1.1 client: uvicorn answers a connection's requests one
at a time) was held to a few dozen events per second, each of which then reached every client
in a write of its own. Here the commands of one turn are written together at the next, Redis's
replies come back in the order the commands went out, and one reader task hands each to its
caller: a command costs about four turns.

Writing the commands of a turn together matters as much: Redis then runs them in one pass and
sends what they publish to every subscriber in one write, so a burst reaches the clients in one
batch instead of in pieces.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError


class DirectConnection:
    """One Redis connection for commands whose callers wait for nothing but their own reply.

    Commands go out in the order ``execute`` was called, those of one turn in one write.

    ``lost`` is called once with the error when the connection fails; every command waiting
    then and every one sent afterwards raises :class:`ConnectionError` until ``connect`` is
    called again (the backend reconnects as a whole). A reply that takes longer than
    ``timeout`` seconds counts as a failed connection: Redis, or the way to it, is stuck.
    """

    def __init__(
        self, url: str, lost: Callable[[BaseException], None], *, timeout: float | None = None
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._lost_callback = lost
        self._pool: ConnectionPool | None = None
        self._connection: AbstractConnection | None = None
        #: The callers waiting for a reply, in the order their commands went out, with when.
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        #: Commands of this turn, packed, for the writer task to send together.
        self._outbox: list[bytes] = []
        self._ready_to_write = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._error: BaseException | None = ConnectionError("the Redis connection is not open")

    async def connect(self) -> None:
        self._pool = ConnectionPool.from_url(self._url)
        self._connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        self._error = None
        self._outbox = []
        self._ready_to_write = asyncio.Event()
        self._writer = asyncio.create_task(self._write(), name="redis direct commands")
        self._reader = asyncio.create_task(self._read(), name="redis direct replies")
        if self._timeout is not None:
            self._watchdog = asyncio.create_task(self._watch(self._timeout), name="redis watchdog")

    async def close(self) -> None:
        self._fail(ConnectionError("the Redis connection was closed"), report=False)
        for task in (self._writer, self._reader, self._watchdog):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._writer = self._reader = self._watchdog = None
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.disconnect()
            self._pool = None
        self._connection = None

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply (a Redis error reply is raised)."""
        connection = self._connection
        if self._error is not None or connection is None:
            raise ConnectionError(f"the Redis connection is not usable: {self._error!r}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((future, loop.time()))
        self._outbox.extend(connection.pack_command(*args))
        self._ready_to_write.set()
        return await future

    async def _write(self) -> None:
        connection = self._connection
        assert connection is not None
        while True:
            await self._ready_to_write.wait()
            self._ready_to_write.clear()
            commands, self._outbox = self._outbox, []
            try:
                await connection.send_packed_command(commands, False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(exc)
                return

    async def _read(self) -> None:
        connection = self._connection
        assert connection is not None
        while True:
            try:
                reply = await connection.read_response(timeout=math.inf, disconnect_on_error=False)
            except ResponseError as exc:
                self._answer(exc, error=True)
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(exc)
                return
            self._answer(reply, error=False)

    async def _watch(self, timeout: float) -> None:
        """Fail the connection when the oldest command has waited longer than ``timeout``:
        one check a second for all of them, instead of a timer per command."""
        loop = asyncio.get_running_loop()
        while self._error is None:
            await asyncio.sleep(min(1.0, timeout / 2))
            if self._waiting and loop.time() - self._waiting[0][1] > timeout:
                self._fail(TimeoutError(f"Redis did not answer within {timeout} s"))

    def _answer(self, reply: Any, *, error: bool) -> None:
        if not self._waiting:
            self._fail(ConnectionError(f"Redis sent a reply nobody asked for: {reply!r}"))
            return
        future, _ = self._waiting.popleft()
        if future.done():  # its caller stopped waiting
            return
        if error:
            future.set_exception(reply)
        else:
            future.set_result(reply)

    def _fail(self, error: BaseException, *, report: bool = True) -> None:
        first = self._error is None
        self._error = error
        waiting, self._waiting = self._waiting, deque()
        for future, _ in waiting:
            if not future.done():
                future.set_exception(ConnectionError(f"lost the Redis connection: {error!r}"))
        if first and report:
            self._lost_callback(error)
