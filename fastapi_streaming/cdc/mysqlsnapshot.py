"""A client's snapshot of a MySQL/MariaDB table, fenced by a binlog position.

``START TRANSACTION WITH CONSISTENT SNAPSHOT`` takes an InnoDB read view, and MariaDB reports the
binlog position that view stands at (``binlog_snapshot_file`` / ``binlog_snapshot_position``):
every transaction committed before it is in the view and written in the binlog before that
position, every later one after it. Row events carry the position where they end, so a change is
in the snapshot's rows if and only if it ends at or before the fence. MySQL does not report the
position (``SHOW MASTER STATUS`` in the same transaction may already be past commits the view
does not see), so there a client snapshot is refused with that reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from .capture import CapturedChange
from .errors import CaptureConfigurationError
from .mysqlcheck import connect, json_value, reflect
from .table import TableInfo

BATCH = 1000


def binlog_order(fence: str) -> tuple[int, int] | None:
    """``mysql-bin.000012:4567`` as (12, 4567), comparable in binlog order."""
    file, _, pos = fence.rpartition(":")
    _, _, number = file.rpartition(".")
    if not number.isdigit() or not pos.isdigit():
        return None
    return int(number), int(pos)


class MySQLSnapshot:
    """The rows of one table (those matching ``filters``) in one consistent snapshot."""

    def __init__(self, connection: Any, name: str) -> None:
        self.connection = connection
        self.name = name
        self.file = ""
        self.pos = 0
        self.table: TableInfo | None = None
        self._fence = (0, 0)
        self._cursor: Any = None

    @classmethod
    async def open(
        cls, options: dict[str, Any], table: str, filters: dict[str, str], *, name: str
    ) -> MySQLSnapshot:
        import pymysql.cursors

        connection = await asyncio.to_thread(
            connect, {**options, "cursorclass": pymysql.cursors.SSCursor}
        )
        snapshot = cls(connection, name)
        try:
            await asyncio.to_thread(snapshot._begin, options["database"], table, filters)
        except BaseException:
            await asyncio.to_thread(connection.close)
            raise
        return snapshot

    def _begin(self, database: str, table_name: str, filters: dict[str, str]) -> None:
        import pymysql.cursors

        # The columns first (a plain cursor: the streaming one reads one result at a time).
        plain = self.connection.cursor(pymysql.cursors.Cursor)
        self.table = table = reflect(plain, database, table_name)
        names = [column.name for column in table.columns]
        unknown = set(filters) - set(names)
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not columns of {table.qualified_name}")
        plain.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        plain.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
        status = dict(plain.fetchall())
        if "Binlog_snapshot_file" not in status:
            raise CaptureConfigurationError(
                "This server does not report the binlog position of a consistent snapshot "
                "(MariaDB does, MySQL does not), so a client snapshot could not be fenced "
                "against the live changes; subscribe without a snapshot."
            )
        self.file, self.pos = (
            status["Binlog_snapshot_file"],
            int(status["Binlog_snapshot_position"]),
        )
        self._fence = binlog_order(f"{self.file}:{self.pos}") or (0, 0)
        columns = ", ".join(f"`{name}`" for name in names)
        where = " AND ".join(f"CAST(`{name}` AS CHAR) = %s" for name in filters)
        cursor = self.connection.cursor()
        cursor.execute(
            f"SELECT {columns} FROM `{database}`.`{table_name}`"
            + (f" WHERE {where}" if where else ""),
            tuple(filters.values()),
        )
        self._cursor = cursor

    async def rows(self) -> AsyncIterator[list[CapturedChange]]:
        table = self.table
        assert table is not None, "open() first"
        names = [column.name for column in table.columns]
        key = table.key or tuple(names)
        started = time.time_ns() // 1_000_000
        source = {
            "connector": "mysql",
            "name": self.name,
            "db": table.database,
            "table": table.table,
            "ts_ms": started,
            "snapshot": True,
            "file": self.file,
            "pos": self.pos,
        }
        while rows := await asyncio.to_thread(self._cursor.fetchmany, BATCH):
            batch = []
            for values in rows:
                row = {name: json_value(value) for name, value in zip(names, values, strict=True)}
                identity = json.dumps([row.get(name) for name in key], default=str)
                batch.append(
                    CapturedChange(
                        op="r",
                        before=None,
                        after=row,
                        source=source,
                        commit_ms=started,
                        position=f"mysql:{table.qualified_name}:snapshot:{self.file}:"
                        f"{self.pos}:{identity}",
                    )
                )
            yield batch

    def covers(self, fence: str | None) -> bool:
        order = binlog_order(fence) if fence is not None else None
        return order is not None and order <= self._fence

    def passed(self, fence: str | None) -> bool:
        order = binlog_order(fence) if fence is not None else None
        return order is not None and not self.covers(fence)

    async def close(self) -> None:
        await asyncio.to_thread(self.connection.close)
