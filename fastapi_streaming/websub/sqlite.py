"""SQLite engines for the hub whose connections open completely or are closed again.

aiosqlite runs each connection in a thread of its own that hands every result back to the
event loop. When the task opening a connection is cancelled (the hub cancels its workers on
stop, whatever they are doing), SQLAlchemy drops the half-open connection while its thread
goes on; the thread then hands its result to an event loop that may have closed meanwhile
(``RuntimeError: Event loop is closed``). Here the opening runs shielded: a cancelled caller
waits until the connection is open, closes it, and only then gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

#: Every connection: WAL, and wait up to 30 s for another writer instead of failing.
_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA busy_timeout=30000")


def sqlite_engine(url: str) -> AsyncEngine:
    """An engine on the SQLite database of ``url`` (``sqlite+aiosqlite:///...``).

    WAL mode, and every transaction starts with ``BEGIN IMMEDIATE``, so it takes the write
    lock up front and waits for it (``busy_timeout``) instead of failing when it finds halfway
    that another process wrote meanwhile. DDL becomes transactional too.
    """

    async def connect() -> aiosqlite.Connection:
        sync_engine = engine.sync_engine
        args, options = sync_engine.dialect.create_connect_args(sync_engine.url)
        # isolation_level None: no implicit BEGIN from the driver; ``_begin`` says BEGIN.
        return await _open_completely(args, {**options, "timeout": 30, "isolation_level": None})

    engine = create_async_engine(url, async_creator=connect)

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


async def _open_completely(args: Sequence[Any], options: dict[str, Any]) -> aiosqlite.Connection:
    opening = asyncio.ensure_future(_open(args, options))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        # The connection's thread goes on opening: let it finish, then close what it opened.
        with contextlib.suppress(Exception):
            await (await opening).close()
        raise


async def _open(args: Sequence[Any], options: dict[str, Any]) -> aiosqlite.Connection:
    connection = aiosqlite.connect(*args, **options)
    # As SQLAlchemy does for its own aiosqlite connections: a connection an app forgets to
    # close must not keep the interpreter from exiting.
    connection._thread.daemon = True
    await connection
    try:
        for pragma in _PRAGMAS:
            await connection.execute(pragma)
    except BaseException:
        await connection.close()
        raise
    return connection
