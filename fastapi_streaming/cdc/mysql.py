"""MySQL/MariaDB as a change source: the row-based binlog, snapshot first.

``MySQLChanges("mysql://user@host:3306/app", table="app.orders")`` reads the table's row events
from the binlog with ``mysql-replication``, in a thread. MySQL has no replication slots, so the
confirmed binlog position of each capture is kept in a small table of the same database
(``fastapi_streaming_cdc_positions``); it is written only after the broker accepted every change
before it. The first start reads the table in a consistent snapshot whose binlog position
MariaDB reports (``binlog_snapshot_file``/``_position``), then streams from exactly there; the
position is stored when the snapshot is complete, so an interrupted snapshot is taken again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from functools import partial
from typing import Any

from .capture import CapturedChange, Item
from .errors import CaptureConfigurationError
from .handover import Handover
from .lease import AdvisoryLease, lock_key
from .mysqlbinlog import BinlogReader, bytes_after
from .mysqlcheck import (
    POSITIONS,
    check_key,
    check_server,
    connect,
    ensure_positions_table,
    events_name_columns,
    json_value,
    reflect,
    settings,
)
from .mysqlcolumns import ColumnLabels
from .mysqlsnapshot import MySQLSnapshot
from .table import TableInfo

logger = logging.getLogger("fastapi_streaming.cdc")

#: Seconds between writes of the confirmed position while changes keep coming.
STORE_INTERVAL = 0.2
#: Seconds between measurements of the lag (``SHOW BINARY LOGS``).
LAG_INTERVAL = 1.0


def lock_name(capture: str) -> str:
    """The ``GET_LOCK`` name of a capture: at most 64 characters, distinct for long names."""
    name = f"fastapi_streaming cdc {capture}"
    if len(name) <= 64:
        return name
    return f"fastapi_streaming cdc {lock_key(capture) & (2**64 - 1):016x}"


class MySQLChanges:
    """The committed changes of one MySQL/MariaDB table, read from the row-based binlog.

    Args:
        dsn: ``mysql://user:password@host:3306/database``; the user needs REPLICATION SLAVE
            and REPLICATION CLIENT, and may create the positions table in the database.
        table: ``database.table`` (the DSN's database when left out).
        snapshot: read the table's rows (``op: r``) on the first start (MariaDB).
        name: names this capture's stored position (default: the table).
    """

    def __init__(
        self, dsn: str, *, table: str, snapshot: bool = True, name: str | None = None
    ) -> None:
        self.options = settings(dsn)
        database, _, table_name = table.rpartition(".")
        self.database = database or self.options["database"]
        self.options["database"] = self.database
        self.table_name = table_name
        self.snapshot = snapshot
        self.capture_name = name or f"{self.database}.{table_name}"
        self.name = f"mysql {self.database}.{table_name}"
        self.table: TableInfo | None = None
        self._pending: tuple[str, int] | None = None
        self._stored: tuple[str, int] | None = None
        self._stored_at = 0.0
        self._reader: BinlogReader | None = None
        #: Whether row events name their columns (binlog_row_metadata = FULL).
        self.named_events = False
        self.snapshot_rows = 0
        #: Binlog bytes written beyond the stored position, measured every LAG_INTERVAL.
        self.lag_bytes: int | None = None
        self._lag_at = 0.0

    # -- startup ---------------------------------------------------------------------------

    async def check(self, parameters: tuple[str, ...]) -> TableInfo:
        self.table = await asyncio.to_thread(self._check, parameters)
        return self.table

    def _check(self, parameters: tuple[str, ...]) -> TableInfo:
        connection = connect(self.options)
        try:
            cursor = connection.cursor()
            check_server(cursor)
            self.named_events = events_name_columns(cursor)
            info = reflect(cursor, self.database, self.table_name)
            missing = [name for name in parameters if name not in {c.name for c in info.columns}]
            if missing:
                raise CaptureConfigurationError(
                    f"The address parameters {missing} are not columns of {info.qualified_name}."
                )
            check_key(info, snapshot=self.snapshot)
            ensure_positions_table(cursor, self.database)
            return info
        finally:
            connection.close()

    async def reflect(self) -> TableInfo:
        return await self.check(())

    def lease(self) -> contextlib.AbstractAsyncContextManager[Callable[[], bool]]:
        name = lock_name(self.capture_name)
        return AdvisoryLease(
            partial(connect, self.options), name, statement="SELECT GET_LOCK(%s, 0)", key=name
        ).hold()

    # -- capture ---------------------------------------------------------------------------

    async def changes(self) -> AsyncGenerator[Sequence[Item], None]:
        assert self.table is not None, "check() runs first"
        position = await asyncio.to_thread(self._load_position)
        if position is None:
            if self.snapshot:
                async for rows in self._snapshot():
                    if isinstance(rows, tuple):
                        position = rows
                    else:
                        yield rows
                assert position is not None
            else:
                position = await asyncio.to_thread(self._current_position)
            await asyncio.to_thread(self._store, position)
        stop = threading.Event()
        handover = Handover(asyncio.get_running_loop(), stop)
        labels = ColumnLabels(
            f"{self.database}.{self.table_name}",
            [column.name for column in self.table.columns],
            self._column_names,
            named_events=self.named_events,
        )
        reader = BinlogReader(self.options, self.table, position, handover, stop, labels)
        self._reader = reader
        reader.start()
        try:
            while True:
                item = await handover.get(1.0)
                if time.monotonic() - self._lag_at >= LAG_INTERVAL:
                    await self._measure_lag()
                if item is None:
                    await self._flush_position()
                    yield []
                    continue
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            reader.close()
            self._reader = None
            await asyncio.to_thread(reader.join, 10)
            await self._flush_position()

    def _column_names(self) -> list[str]:
        connection = connect(self.options)
        try:
            table = reflect(connection.cursor(), self.database, self.table_name)
            return [column.name for column in table.columns]
        finally:
            connection.close()

    async def open_snapshot(self, filters: dict[str, str]) -> MySQLSnapshot:
        """The table's rows now (those whose columns have the ``filters`` text values), for
        one client, fenced by MariaDB's snapshot binlog position (see :mod:`.mysqlsnapshot`)."""
        return await MySQLSnapshot.open(
            self.options, self.table_name, filters, name=self.capture_name
        )

    async def confirm(self, token: Any) -> None:
        self._pending = token
        if time.monotonic() - self._stored_at >= STORE_INTERVAL:
            await self._flush_position()

    async def _flush_position(self) -> None:
        pending = self._pending
        if pending is not None and pending != self._stored:
            await asyncio.to_thread(self._store, pending)

    def health(self) -> dict[str, Any]:
        reader = self._reader
        return {
            "source": "mysql",
            "table": f"{self.database}.{self.table_name}",
            "streaming": reader is not None and reader.streaming,
            "confirmed_position": list(self._stored) if self._stored else None,
            "lag_bytes": self.lag_bytes,
            "snapshot_rows": self.snapshot_rows,
        }

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    # -- positions and snapshot -------------------------------------------------------------

    def _load_position(self) -> tuple[str, int] | None:
        connection = connect(self.options)
        try:
            cursor = connection.cursor()
            cursor.execute(
                f"SELECT file, pos FROM {POSITIONS} WHERE name = %s", (self.capture_name,)
            )
            row = cursor.fetchone()
            self._stored = (row[0], int(row[1])) if row else None
            return self._stored
        finally:
            connection.close()

    def _store(self, position: tuple[str, int]) -> None:
        connection = connect(self.options)
        try:
            connection.cursor().execute(
                f"INSERT INTO {POSITIONS} (name, file, pos) VALUES (%s, %s, %s) "
                "ON DUPLICATE KEY UPDATE file = VALUES(file), pos = VALUES(pos), "
                "updated_at = CURRENT_TIMESTAMP(3)",
                (self.capture_name, position[0], position[1]),
            )
        finally:
            connection.close()
        self._stored, self._stored_at = position, time.monotonic()

    async def _measure_lag(self) -> None:
        """How much binlog the server wrote beyond the stored position (never stops capture)."""
        self._lag_at = time.monotonic()
        if self._stored is None:
            return
        try:
            logs = await asyncio.to_thread(self._binary_logs)
        except Exception as exc:
            logger.debug("Could not measure the lag of %s: %s", self.name, exc)
            return
        self.lag_bytes = bytes_after(logs, self._stored)

    def _binary_logs(self) -> list[tuple[str, int]]:
        connection = connect(self.options)
        try:
            cursor = connection.cursor()
            cursor.execute("SHOW BINARY LOGS")
            return [(str(row[0]), int(row[1])) for row in cursor.fetchall()]
        finally:
            connection.close()

    def _current_position(self) -> tuple[str, int]:
        connection = connect(self.options)
        try:
            cursor = connection.cursor()
            cursor.execute("SHOW MASTER STATUS")
            file, pos = cursor.fetchone()[:2]
            return str(file), int(pos)
        finally:
            connection.close()

    async def _snapshot(self) -> AsyncIterator[list[CapturedChange] | tuple[str, int]]:
        """The rows in a consistent snapshot, then (last) its binlog position."""
        import pymysql.cursors

        assert self.table is not None
        table = self.table
        names = [column.name for column in table.columns]
        key = table.key or tuple(names)
        connection = await asyncio.to_thread(
            connect, {**self.options, "cursorclass": pymysql.cursors.SSCursor}
        )
        started = time.time_ns() // 1_000_000
        try:
            cursor = connection.cursor()
            await asyncio.to_thread(cursor.execute, "START TRANSACTION WITH CONSISTENT SNAPSHOT")
            await asyncio.to_thread(cursor.execute, "SHOW STATUS LIKE 'binlog_snapshot_%'")
            status = dict(await asyncio.to_thread(cursor.fetchall))
            if "Binlog_snapshot_file" not in status:
                raise CaptureConfigurationError(
                    "This server does not report the binlog position of a consistent snapshot "
                    "(MariaDB does); pass snapshot=False to stream without one."
                )
            file, pos = status["Binlog_snapshot_file"], int(status["Binlog_snapshot_position"])
            columns = ", ".join(f"`{name}`" for name in names)
            await asyncio.to_thread(
                cursor.execute, f"SELECT {columns} FROM `{self.database}`.`{self.table_name}`"
            )
            while rows := await asyncio.to_thread(cursor.fetchmany, 1000):
                batch = []
                for values in rows:
                    row = {name: json_value(v) for name, v in zip(names, values, strict=True)}
                    identity = json.dumps([row.get(name) for name in key], default=str)
                    batch.append(
                        CapturedChange(
                            op="r",
                            before=None,
                            after=row,
                            source=self._source(started, file, pos, snapshot=True),
                            commit_ms=started,
                            position=f"mysql:{table.qualified_name}:snapshot:{file}:{pos}:"
                            f"{identity}",
                            fence=f"{file}:{pos}",
                        )
                    )
                self.snapshot_rows += len(batch)
                yield batch
            await asyncio.to_thread(cursor.execute, "COMMIT")
            yield (file, pos)
        finally:
            await asyncio.to_thread(connection.close)

    def _source(self, ts_ms: int, file: str, pos: int, *, snapshot: bool) -> dict[str, Any]:
        return {
            "connector": "mysql",
            "name": self.capture_name,
            "db": self.database,
            "table": self.table_name,
            "ts_ms": ts_ms,
            "snapshot": snapshot,
            "file": file,
            "pos": pos,
        }
