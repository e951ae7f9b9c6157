"""A client's snapshot of a PostgreSQL table, fenced by transaction visibility.

The rows are read in a ``REPEATABLE READ`` transaction whose snapshot is taken by its first
statement, ``pg_current_snapshot()``, which also returns it: ``xmin``, ``xmax`` and the
transactions in progress. That is the fence, exact to the transaction: a change is in the rows
if and only if its transaction is visible in that snapshot (PostgreSQL's own rule, as in
``pg_visible_in_snapshot``), and every change carries its transaction id. A WAL position would
not do: PostgreSQL makes transactions visible in an order that can differ, slightly, from the
order of their commit records. Once a change of a transaction that began after the snapshot
arrives (its id is at least ``xmax``), every later change is after the snapshot too.

No replication slot is needed, so any worker can take one, and it costs one ordinary
connection for as long as the rows are read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from .capture import CapturedChange
from .pgcheck import connect, reflect
from .pgstream import parse_lsn
from .table import TableInfo

BATCH = 1000
#: How a client snapshot's connection shows in ``pg_stat_activity``.
APPLICATION_NAME = "fastapi-streaming client snapshot"
_XID_SPAN = 2**32


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class PostgresSnapshot:
    """The rows of one table (those matching ``filters``) in one transaction snapshot."""

    def __init__(self, connection: Any, name: str) -> None:
        self.connection = connection
        self.name = name
        self.xmin = self.xmax = 0
        self.in_progress: frozenset[int] = frozenset()
        self.snapshot_text = ""
        self.lsn = 0
        self.table: TableInfo | None = None
        self._cursor: Any = None

    @classmethod
    async def open(
        cls, dsn: str, table: str, filters: dict[str, str], *, name: str
    ) -> PostgresSnapshot:
        connection = await asyncio.to_thread(connect, dsn, application_name=APPLICATION_NAME)
        snapshot = cls(connection, name)
        try:
            await asyncio.to_thread(snapshot._begin, table, filters)
        except BaseException:
            await asyncio.to_thread(connection.close)
            raise
        return snapshot

    def _begin(self, table_name: str, filters: dict[str, str]) -> None:
        connection = self.connection
        connection.set_session(isolation_level="REPEATABLE READ", readonly=True)
        cursor = connection.cursor()
        # The first statement takes the transaction's snapshot, and returns it.
        cursor.execute("SELECT pg_current_snapshot()::text, pg_current_wal_lsn()::text")
        text, lsn = cursor.fetchone()
        xmin, xmax, running = text.split(":")
        self.snapshot_text = text
        self.xmin, self.xmax = int(xmin), int(xmax)
        self.in_progress = frozenset(int(xid) for xid in running.split(",") if xid)
        self.lsn = parse_lsn(lsn)
        # The columns as they are in this snapshot (a column may have come or gone since
        # capture started).
        self.table = table = reflect(cursor, table_name)[0]
        names = [column.name for column in table.columns]
        unknown = set(filters) - set(names)
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not columns of {table.qualified_name}")
        columns = ", ".join(_quote(name) + "::text" for name in names)
        # An untyped literal takes the column's type, so an index on the column serves.
        where = " AND ".join(f"{_quote(name)} = %s" for name in filters)
        named = connection.cursor(name="fastapi_streaming_client_snapshot")
        named.itersize = BATCH
        try:
            named.execute(
                f"SELECT {columns} FROM {_quote(table.schema or 'public')}.{_quote(table.table)}"
                + (f" WHERE {where}" if where else ""),
                tuple(filters.values()),
            )
        except Exception as exc:
            if not str(getattr(exc, "pgcode", None) or "").startswith("22"):
                raise
            self._cursor = None  # an address value the column's type cannot hold: no rows
            return
        self._cursor = named

    async def rows(self) -> AsyncIterator[list[CapturedChange]]:
        table = self.table
        assert table is not None, "open() first"
        names = [column.name for column in table.columns]
        converters = [column.convert for column in table.columns]
        key = table.key or tuple(names)
        started = time.time_ns() // 1_000_000
        source = {
            "connector": "postgresql",
            "name": self.name,
            "db": table.database,
            "schema": table.schema,
            "table": table.table,
            "ts_ms": started,
            "snapshot": True,
            "lsn": self.lsn,
        }
        while self._cursor is not None and (
            rows := await asyncio.to_thread(self._cursor.fetchmany, BATCH)
        ):
            batch = []
            for values in rows:
                row = {
                    name: None if value is None else convert(value)
                    for name, convert, value in zip(names, converters, values, strict=True)
                }
                identity = json.dumps([row.get(name) for name in key], default=str)
                batch.append(
                    CapturedChange(
                        op="r",
                        before=None,
                        after=row,
                        source=source,
                        commit_ms=started,
                        position=f"{table.database}:{table.qualified_name}:snapshot:"
                        f"{self.snapshot_text}:{identity}",
                    )
                )
            yield batch

    def _full_xid(self, xid: int) -> int:
        """A change's 32-bit transaction id as the snapshot's 64-bit one (same epoch)."""
        full = (self.xmax & ~(_XID_SPAN - 1)) | (xid & (_XID_SPAN - 1))
        if full > self.xmax + _XID_SPAN // 2:
            full -= _XID_SPAN
        elif full < self.xmax - _XID_SPAN // 2:
            full += _XID_SPAN
        return full

    def covers(self, fence: str | None) -> bool:
        if fence is None:
            return False
        if fence.startswith("snapshot:"):
            return self._contains(fence.removeprefix("snapshot:"))
        if not fence.isdigit():
            return False
        xid = self._full_xid(int(fence))
        if xid >= self.xmax:
            return False
        return xid < self.xmin or xid not in self.in_progress

    def _contains(self, other: str) -> bool:
        """Whether every transaction visible in the snapshot ``other`` (``xmin:xmax:xip``, the
        one capture took when it created its slot; its rows are ``op: r`` on the broker) is
        visible in this one: then this client has those rows already."""
        try:
            _, xmax_text, running = other.split(":")
            xmax = int(xmax_text)
            theirs = {int(xid) for xid in running.split(",") if xid}
        except ValueError:
            return False
        if xmax > self.xmax:
            return False
        return all(xid >= xmax or xid in theirs for xid in self.in_progress)

    def passed(self, fence: str | None) -> bool:
        return fence is not None and fence.isdigit() and self._full_xid(int(fence)) >= self.xmax

    async def close(self) -> None:
        await asyncio.to_thread(self.connection.close)
