"""One capture per source in a deployment: a lock on the source database itself.

PostgreSQL's session advisory lock (``pg_try_advisory_lock``) and MySQL/MariaDB's named lock
(``GET_LOCK``) behave alike: held by a connection, released when it ends.

The lock lives on the source database, not the broker, so it works with every broker (the
memory broker too) and needs nothing more than the connection capture needs anyway. It is a
session lock: PostgreSQL releases it the moment the holder's connection ends, which is what
happens when the holding process dies (TCP keepalives cover a host that vanishes). Every other
worker tries again each second, so one of them takes over within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

logger = logging.getLogger("fastapi_streaming.cdc")

KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    digest = hashlib.blake2b(b"fastapi-streaming cdc\n" + name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class AdvisoryLease:
    """Holds a database lock on a connection of its own while capture runs.

    ``connect`` returns a connection in autocommit mode; ``statement`` takes the lock without
    waiting and returns a true value when it got it (PostgreSQL's by default).
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        name: str,
        *,
        statement: str = "SELECT pg_try_advisory_lock(%s)",
        key: Any = None,
        retry: float = 1.0,
        check: float = 1.0,
    ) -> None:
        self.connect = connect
        self.name = name
        self.statement = statement
        self.key = lock_key(name) if key is None else key
        self.retry = retry
        self.check = check
        self.held = False

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[Callable[[], bool]]:
        """Wait until this process holds the lease; yield a function saying if it still does."""
        connection = await asyncio.to_thread(self.connect)
        try:
            cursor = connection.cursor()
            while not await asyncio.to_thread(self._try, cursor):  # noqa: ASYNC110 - polls the server
                await asyncio.sleep(self.retry)
            self.held = True
            logger.info("This process holds the capture lease of %s.", self.name)
            watcher = asyncio.create_task(self._watch(cursor))
            try:
                yield lambda: self.held
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        finally:
            self.held = False
            await asyncio.to_thread(connection.close)

    def _try(self, cursor: Any) -> bool:
        cursor.execute(self.statement, (self.key,))
        return bool(cursor.fetchone()[0])

    async def _watch(self, cursor: Any) -> None:
        """Notice a lost lock connection: another process may hold the lease by now."""
        while self.held:
            await asyncio.sleep(self.check)
            try:
                await asyncio.to_thread(cursor.execute, "SELECT 1")
            except Exception as exc:
                logger.warning("Lost the capture lease of %s: %s", self.name, exc)
                self.held = False
