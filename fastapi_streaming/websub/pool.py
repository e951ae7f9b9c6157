"""Keep-alive connections to callbacks, one bounded pool per origin and checked address.

A pool belongs to one (scheme, checked IP address, port, host name) origin: a connection made
to the address the SSRF guard checked serves only requests whose callback resolved to that same
address now, so a pooled connection cannot carry a request past the check (a host whose DNS
answer changes gets a new pool, pinned to the new, again checked, address). Each pool holds at
most ``connections_per_host`` connections; requests beyond wait for one, within their deadline.
Idle connections are reused last-in first-out (the warmest first) and closed after
``keepalive_seconds`` unused, below the usual server keep-alive of 5 s, so the hub rarely sends
on a connection the callback is closing; when it does, the request is sent again once on a new
connection (see :class:`.http1.ConnectionDropped`).

:class:`CallbackPools` maps callbacks to their pools; the SSRF check stays with the caller.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass

from .http1 import ConnectionDropped, Http1Connection


@dataclass(frozen=True)
class Origin:
    """Where a pool's connections go: the checked ``address``, and the name TLS checks."""

    scheme: str
    address: str
    port: int
    #: The callback's host name: TLS server name and certificate check (and the pool's key, so
    #: two names on one address never share a TLS session).
    host: str


class OriginPool:
    """The connections to one origin: idle ones stacked, at most ``limit`` open at once."""

    def __init__(self, origin: Origin, limit: int, tls: ssl.SSLContext | None) -> None:
        self.origin = origin
        self.limit = limit
        self.tls = tls
        self.idle: list[Http1Connection] = []
        #: Connections open or being opened, idle ones included.
        self.opened = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        #: Connections this pool opened, over its life (observable reuse, for tests and stats).
        self.connects = 0

    async def take(self, deadline: float, keepalive: float) -> Http1Connection:
        """An idle connection, a new one if the pool has room, else the next one given back."""
        loop = asyncio.get_running_loop()
        while True:
            idle = self.idle
            while idle:
                connection = idle.pop()
                if not connection.closed and loop.time() - connection.idle_since < keepalive:
                    return connection
                self._discard(connection)
            if self.opened < self.limit:
                self.opened += 1
                try:
                    return await self._connect(deadline)
                except BaseException:
                    self.opened -= 1
                    self._wake()
                    raise
            waiter: asyncio.Future[None] = loop.create_future()
            self.waiters.append(waiter)
            try:
                await within(waiter, deadline)
            finally:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)

    def give_back(self, connection: Http1Connection, reusable: bool) -> None:
        if reusable and not connection.closed:
            connection.idle_since = asyncio.get_running_loop().time()
            self.idle.append(connection)
        else:
            self._discard(connection)
        self._wake()

    def prune(self, keepalive: float) -> None:
        """Close idle connections unused for ``keepalive`` seconds or closed by the peer."""
        now = asyncio.get_running_loop().time()
        kept = []
        for connection in self.idle:
            if connection.closed or now - connection.idle_since >= keepalive:
                self._discard(connection)
            else:
                kept.append(connection)
        self.idle = kept

    @property
    def unused(self) -> bool:
        return self.opened == 0 and not self.waiters

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()

    def _discard(self, connection: Http1Connection) -> None:
        connection.close()
        self.opened -= 1

    def _wake(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self, deadline: float) -> Http1Connection:
        loop = asyncio.get_running_loop()
        origin = self.origin
        connection = Http1Connection()
        timeout = max(0.0, deadline - loop.time())
        tls = self.tls if origin.scheme == "https" else None
        opening = loop.create_connection(
            lambda: connection,
            origin.address,
            origin.port,
            ssl=tls,
            server_hostname=origin.host if tls is not None else None,
            ssl_handshake_timeout=max(timeout, 0.001) if tls is not None else None,
        )
        try:
            await asyncio.wait_for(opening, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no connection within {timeout:.1f} s") from None
        self.connects += 1
        return connection


async def within(future: asyncio.Future[None], deadline: float) -> None:
    """Wait for ``future`` until ``deadline`` (``loop.time()``), then raise TimeoutError.

    A timer on the loop rather than ``asyncio.wait_for``, which costs a task per wait.
    """
    loop = asyncio.get_running_loop()

    def expire() -> None:
        if not future.done():
            future.set_exception(TimeoutError("the deadline passed"))

    timer = loop.call_at(deadline, expire)
    try:
        await future
    finally:
        timer.cancel()


async def send(
    pool: OriginPool,
    *,
    deadline: float,
    keepalive: float,
    head: bytes,
    body: bytes,
) -> int:
    """One request (``head`` from :func:`.http1.request_head`, then ``body``) through ``pool``,
    whole within ``deadline``; the answer's status.

    A reused connection that ends before any answer byte gets the request again, on the next
    connection (stale idle ones are discarded on the way, so a fresh one comes at the latest
    after the pool's idle ones); any other failure is the caller's to count and retry later.
    """
    loop = asyncio.get_running_loop()
    while True:
        connection = await pool.take(deadline, keepalive)
        timer = loop.call_at(
            deadline, connection.abort, TimeoutError("no answer before the deadline")
        )
        try:
            status = await connection.request(head, body)
        except ConnectionDropped as exc:
            pool.give_back(connection, reusable=False)
            if exc.reused and not exc.answered and loop.time() < deadline:
                continue
            raise
        except BaseException:
            pool.give_back(connection, reusable=False)
            raise
        finally:
            timer.cancel()
        pool.give_back(connection, reusable=connection.ready_for_next())
        return status
