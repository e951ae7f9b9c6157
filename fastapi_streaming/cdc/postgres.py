"""PostgreSQL as a change source: logical replication with ``pgoutput``, snapshot first.

``PostgresChanges(dsn, table="public.orders")`` reads the table's committed changes from the
WAL through a publication and a replication slot (both created when missing). When it creates
the slot, it exports a snapshot at the slot's first position and reads the table's rows in it
(``op: r``) before streaming from that same position: every row is in the snapshot or in the
stream, never in both, never in neither. Positions are confirmed to the server only after the
broker accepted every change before them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from functools import partial
from typing import Any

from .capture import CapturedChange, Item
from .errors import CaptureConfigurationError
from .lease import KEEPALIVES, AdvisoryLease
from .pgcheck import check_routing, check_server, connect, ensure_publication, reflect
from .pgsnapshot import PostgresSnapshot
from .pgstream import ReplicationThread, SlotCreated, format_lsn
from .table import TableInfo

logger = logging.getLogger("fastapi_streaming.cdc")

SNAPSHOT_DONE = "fastapi-streaming: the snapshot of slot {slot} is complete"
_NAME = re.compile(r"[^a-z0-9_]")


class PostgresChanges:
    """The committed changes of one PostgreSQL table, read from the WAL.

    Args:
        dsn: a libpq connection string or URL (``postgresql://user@host:5432/db``); the role
            needs the REPLICATION attribute and, to create the publication, to own the table.
        table: ``schema.table`` (``public`` when the schema is left out).
        slot: the replication slot's name (default ``fastapi_streaming_<schema>_<table>``).
            It keeps the position across restarts; drop it when you stop capturing (an
            unconsumed slot keeps the server from removing WAL).
        publication: an existing publication to read; by default one named like the slot is
            created for the table.
        snapshot: read the table's current rows (``op: r``) when the slot is created.
    """

    def __init__(
        self,
        dsn: str,
        *,
        table: str,
        slot: str | None = None,
        publication: str | None = None,
        snapshot: bool = True,
    ) -> None:
        schema, _, name = table.rpartition(".")
        self.dsn = dsn
        self.table_name = f"{schema or 'public'}.{name}"
        default = _NAME.sub("_", f"fastapi_streaming_{schema or 'public'}_{name}".lower())[:63]
        self.slot = slot or default
        self.publication = publication or self.slot
        self.create_publication = publication is None
        self.snapshot = snapshot
        self.name = f"postgresql {self.table_name} (slot {self.slot})"
        self.table: TableInfo | None = None
        self._thread: ReplicationThread | None = None
        self._confirmed = 0
        self.snapshot_rows = 0
        #: ``xmin:xmax:xip`` of the snapshot exported with the slot, once it is read.
        self._slot_snapshot = ""

    # -- startup ---------------------------------------------------------------------------

    async def check(self, parameters: tuple[str, ...]) -> TableInfo:
        self.table = await asyncio.to_thread(self._check, parameters)
        return self.table

    def _check(self, parameters: tuple[str, ...]) -> TableInfo:
        connection = connect(self.dsn)
        try:
            connection.autocommit = True
            cursor = connection.cursor()
            check_server(cursor)
            info, identity = reflect(cursor, self.table_name)
            check_routing(info, identity, parameters)
            ensure_publication(cursor, info, self.publication, create=self.create_publication)
            return info
        finally:
            connection.close()

    async def reflect(self) -> TableInfo:
        self.table = await asyncio.to_thread(self._reflect)
        return self.table

    def _reflect(self) -> TableInfo:
        connection = connect(self.dsn)
        try:
            connection.autocommit = True
            return reflect(connection.cursor(), self.table_name)[0]
        finally:
            connection.close()

    def lease(self) -> contextlib.AbstractAsyncContextManager[Callable[[], bool]]:
        return AdvisoryLease(partial(_lease_connection, self.dsn), f"postgresql {self.slot}").hold()

    # -- capture ---------------------------------------------------------------------------

    async def changes(self) -> AsyncGenerator[Sequence[Item], None]:
        assert self.table is not None, "check() runs first"
        create = await asyncio.to_thread(self._prepare_slot)
        thread = ReplicationThread(
            partial(_replication_connection, self.dsn),
            slot=self.slot,
            publication=self.publication,
            create_slot=create,
            table=self.table,
            loop=asyncio.get_running_loop(),
        )
        self._thread = thread
        thread.confirmed = self._confirmed
        thread.start()
        try:
            while True:
                item = await thread.next_item(1.0)
                if item is None:
                    yield []
                    continue
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, SlotCreated):
                    if self.snapshot:
                        async for rows in self._snapshot(item):
                            yield rows
                        await asyncio.to_thread(self._mark_snapshot_done)
                    thread.snapshot_taken.set()
                    continue
                yield item
        finally:
            thread.stop()
            self._thread = None
            await asyncio.to_thread(thread.join)

    async def open_snapshot(self, filters: dict[str, str]) -> PostgresSnapshot:
        """The table's rows now (those whose columns have the ``filters`` text values), for
        one client, fenced by transaction visibility (see :mod:`.pgsnapshot`)."""
        return await PostgresSnapshot.open(self.dsn, self.table_name, filters, name=self.slot)

    async def confirm(self, token: Any) -> None:
        self._confirmed = int(token)
        if self._thread is not None:
            self._thread.confirmed = self._confirmed

    def health(self) -> dict[str, Any]:
        thread = self._thread
        return {
            "source": "postgresql",
            "table": self.table_name,
            "slot": self.slot,
            "streaming": thread is not None and thread.streaming,
            "confirmed_lsn": format_lsn(self._confirmed) if self._confirmed else None,
            "lag_bytes": thread.lag_bytes if thread is not None else None,
            "snapshot_rows": self.snapshot_rows,
        }

    async def close(self) -> None:
        if self._thread is not None:
            self._thread.stop()

    # -- the slot and the snapshot ---------------------------------------------------------

    def _prepare_slot(self) -> bool:
        """Whether the slot must be created; drops one whose snapshot never completed."""
        connection = connect(self.dsn)
        try:
            connection.autocommit = True
            cursor = connection.cursor()
            cursor.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
            )
            found = cursor.fetchone()
            if found is None:
                return True
            if not self.snapshot:
                return False
            cursor.execute(
                "SELECT obj_description(oid, 'pg_publication') FROM pg_publication "
                "WHERE pubname = %s",
                (self.publication,),
            )
            row = cursor.fetchone()
            if row is not None and row[0] == SNAPSHOT_DONE.format(slot=self.slot):
                return False
            if found[0]:
                raise CaptureConfigurationError(f"the slot {self.slot} is in use elsewhere")
            logger.warning(
                "The snapshot of %s did not complete last time; taking it again.", self.name
            )
            cursor.execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))
            return True
        finally:
            connection.close()

    def _mark_snapshot_done(self) -> None:
        connection = connect(self.dsn)
        try:
            connection.autocommit = True
            text = SNAPSHOT_DONE.format(slot=self.slot)
            publication = '"' + self.publication.replace('"', '""') + '"'
            connection.cursor().execute(f"COMMENT ON PUBLICATION {publication} IS %s", (text,))
        finally:
            connection.close()

    async def _snapshot(self, slot: SlotCreated) -> AsyncIterator[list[CapturedChange]]:
        """The table's rows as of the slot's first position, in batches."""
        assert self.table is not None
        table = self.table
        names = [column.name for column in table.columns]
        converters = [column.convert for column in table.columns]
        key = table.key or tuple(names)
        started = time.time_ns() // 1_000_000
        connection = await asyncio.to_thread(connect, self.dsn)
        try:
            cursor = await asyncio.to_thread(self._open_snapshot, connection, slot, names)
            while rows := await asyncio.to_thread(cursor.fetchmany, 1000):
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
                            source=self._snapshot_source(started, slot.consistent_lsn),
                            commit_ms=started,
                            position=f"{table.database}:{table.qualified_name}:snapshot:"
                            f"{slot.consistent_lsn}:{identity}",
                            fence=f"snapshot:{self._slot_snapshot}",
                        )
                    )
                self.snapshot_rows += len(batch)
                yield batch
        finally:
            await asyncio.to_thread(connection.close)

    def _open_snapshot(self, connection: Any, slot: SlotCreated, names: list[str]) -> Any:
        assert self.table is not None
        # psycopg2 begins the transaction; the snapshot must be its first statement.
        connection.set_session(isolation_level="REPEATABLE READ", readonly=True)
        cursor = connection.cursor()
        cursor.execute("SET TRANSACTION SNAPSHOT %s", (slot.snapshot_name,))
        # A client's own snapshot compares this one to its own (see pgsnapshot).
        cursor.execute("SELECT pg_current_snapshot()::text")
        self._slot_snapshot = str(cursor.fetchone()[0])
        columns = ", ".join('"' + name.replace('"', '""') + '"::text' for name in names)
        named = connection.cursor(name="fastapi_streaming_snapshot")
        named.itersize = 1000
        schema, table = self.table.schema or "public", self.table.table
        named.execute(
            f'SELECT {columns} FROM "{schema.replace(chr(34), chr(34) * 2)}".'
            f'"{table.replace(chr(34), chr(34) * 2)}"'
        )
        return named

    def _snapshot_source(self, started: int, lsn: int) -> dict[str, Any]:
        assert self.table is not None
        return {
            "connector": "postgresql",
            "name": self.slot,
            "db": self.table.database,
            "schema": self.table.schema,
            "table": self.table.table,
            "ts_ms": started,
            "snapshot": True,
            "lsn": lsn,
        }


def _replication_connection(dsn: str) -> Any:
    from psycopg2.extras import LogicalReplicationConnection

    return connect(dsn, connection_factory=LogicalReplicationConnection)


def _lease_connection(dsn: str) -> Any:
    connection = connect(dsn, **KEEPALIVES)
    connection.autocommit = True
    return connection
