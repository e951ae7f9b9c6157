"""The replication connection of a PostgreSQL source, in a thread of its own.

psycopg2 is the one maintained Python client that speaks the streaming replication protocol
(see the design decisions); it blocks, so the connection lives in one thread, which decodes
``pgoutput`` into :class:`CapturedChange` items and hands them to the event loop in batches
through a bounded hand-over (a slow broker slows the reading down; nothing piles up). The thread is
also the only one that talks to the connection, so the event loop passes the confirmed position
through an attribute and the thread sends it as replication feedback.
"""

from __future__ import annotations

import asyncio
import logging
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import pgoutput
from .capture import CapturedChange, Checkpoint, Item, TableChanged
from .handover import Handover, Stopped
from .pgtypes import converter_for_oid
from .table import TableInfo

logger = logging.getLogger("fastapi_streaming.cdc")

BATCH = 1000
#: Seconds between confirmations sent to the server while changes keep coming.
FEEDBACK_INTERVAL = 0.1
#: psycopg2's own status messages, every so many seconds. They only repeat what capture
#: confirmed (or, caught up, the server's position): capture confirms sooner by itself.
STATUS_INTERVAL = 5.0


@dataclass(frozen=True)
class SlotCreated:
    """The slot was just created: its first position, and the snapshot exported with it."""

    consistent_lsn: int
    snapshot_name: str


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return int(high, 16) << 32 | int(low, 16)


class ReplicationThread:
    """Reads a replication slot in a thread and feeds an asyncio queue."""

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        slot: str,
        publication: str,
        create_slot: bool,
        table: TableInfo,
        loop: asyncio.AbstractEventLoop,
        max_batches: int = 8,
    ) -> None:
        self.connect = connect
        self.slot = slot
        self.publication = publication
        self.create_slot = create_slot
        self.table = table
        self.loop = loop
        self.stop_event = threading.Event()
        self.handover = Handover(loop, self.stop_event, max_batches)
        self.snapshot_taken = threading.Event()
        #: The position the event loop confirmed: every change before it is in the broker.
        self.confirmed = 0
        self.server_lsn = 0
        #: The position last sent to the server as flushed.
        self.flushed = 0
        #: True once the server streams changes (after the snapshot, if one was taken).
        self.streaming = False
        self._relations: dict[int, pgoutput.Relation] = {}
        #: Per relation, each column's name and converter, in the order values arrive.
        self._converters: dict[int, list[tuple[str, Callable[[str], Any]]]] = {}
        self._thread = threading.Thread(target=self._main, name=f"cdc {slot}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.snapshot_taken.set()

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)

    @property
    def lag_bytes(self) -> int:
        """WAL the server has beyond what this capture told it is done with."""
        return max(0, self.server_lsn - self.flushed) if self.flushed else 0

    # -- the thread ------------------------------------------------------------------------

    def _main(self) -> None:
        connection = None
        try:
            connection = self.connect()
            cursor = connection.cursor()
            start = 0
            if self.create_slot:
                cursor.execute(
                    f'CREATE_REPLICATION_SLOT "{self.slot}" LOGICAL pgoutput EXPORT_SNAPSHOT'
                )
                _, consistent, snapshot_name, _ = cursor.fetchone()
                start = parse_lsn(consistent)
                self._put(SlotCreated(start, snapshot_name))
                self.snapshot_taken.wait()  # the snapshot stays valid while this waits
                if self.stop_event.is_set():
                    return
            cursor.start_replication(
                slot_name=self.slot,
                decode=False,
                start_lsn=start,
                options={"proto_version": "1", "publication_names": self.publication},
                status_interval=STATUS_INTERVAL,
            )
            self.streaming = True
            self._stream(cursor)
        except Stopped:
            pass
        except BaseException as exc:
            if not self.stop_event.is_set():
                try:
                    self._put(exc, stopping=False)
                except Stopped:
                    pass
        finally:
            if connection is not None:
                connection.close()

    def _stream(self, cursor: Any) -> None:
        in_transaction = False
        shipped = 0  # the end of the last transaction handed to the event loop
        sent, sent_at = -1, 0.0
        begin: pgoutput.Begin | None = None
        index = 0
        batch: list[Item] = []
        while not self.stop_event.is_set():
            message = cursor.read_message()
            if message is not None:
                decoded = pgoutput.decode(message.payload)
                if isinstance(decoded, pgoutput.Begin):
                    begin, index, in_transaction = decoded, 0, True
                elif isinstance(decoded, pgoutput.Commit):
                    batch.append(Checkpoint(decoded.end_lsn))
                    shipped, in_transaction = decoded.end_lsn, False
                elif isinstance(decoded, pgoutput.Relation):
                    if self._columns_changed(decoded):
                        batch.append(TableChanged())
                    self._relations[decoded.oid] = decoded
                elif begin is not None and not isinstance(decoded, pgoutput.Other):
                    for change in self._changes(decoded, begin, message.data_start, index):
                        batch.append(change)
                        index += 1
                if len(batch) < BATCH:
                    continue
            self.server_lsn = max(self.server_lsn, cursor.wal_end)
            idle = not batch
            if batch:
                self._put(batch)
                batch = []
            flush = self.confirmed
            if idle and not in_transaction and shipped <= flush:
                # Caught up: WAL of other tables up to the server's position is ours to free.
                flush = max(flush, cursor.wal_end)
            now = time.monotonic()
            if flush > sent and (idle or now - sent_at >= FEEDBACK_INTERVAL):
                # Promptly: what is not confirmed is sent again after a crash.
                cursor.send_feedback(write_lsn=flush, flush_lsn=flush, apply_lsn=flush, force=True)
                sent, sent_at = flush, now
                self.flushed = flush
            if idle:
                select.select([cursor], [], [], FEEDBACK_INTERVAL)

    def _columns_changed(self, relation: pgoutput.Relation) -> bool:
        """Learn a relation's converters; True if its columns differ from what was known.

        A column known since startup keeps its reflected converter; one added (or retyped)
        while streaming gets the converter of its type OID.
        """
        known = {column.name: column.convert for column in self.table.columns}
        previous = self._relations.get(relation.oid)
        kept = set(previous.columns) if previous is not None else None
        converters = []
        for column in relation.columns:
            same = column.name in known and (kept is None or column in kept)
            convert = known[column.name] if same else converter_for_oid(column.type_oid)
            converters.append((column.name, convert))
        self._converters[relation.oid] = converters
        if previous is None:
            return [c.name for c in relation.columns] != [c.name for c in self.table.columns]
        return relation.columns != previous.columns

    def _changes(
        self, message: pgoutput.Message, begin: pgoutput.Begin, lsn: int, index: int
    ) -> list[CapturedChange]:
        if isinstance(message, pgoutput.Truncate):
            return [self._change("t", None, None, begin, lsn, index)]
        relation = self._relations.get(getattr(message, "relation_oid", -1))
        if relation is None:
            return []
        if isinstance(message, pgoutput.Insert):
            return [self._change("c", None, self._row(relation, message.new), begin, lsn, index)]
        if isinstance(message, pgoutput.Update):
            before = self._row(relation, message.old) if message.old is not None else None
            after = self._row(relation, message.new, previous=before)
            return [self._change("u", before, after, begin, lsn, index)]
        if isinstance(message, pgoutput.Delete):
            before = self._row(relation, message.old)
            if message.old_is_key_only:
                keys = {column.name for column in relation.columns if column.is_key}
                before = {name: value for name, value in before.items() if name in keys}
            return [self._change("d", before, None, begin, lsn, index)]
        return []

    def _row(
        self,
        relation: pgoutput.Relation,
        values: pgoutput.Values,
        previous: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for (name, convert), value in zip(self._converters[relation.oid], values, strict=False):
            if value.__class__ is str:
                row[name] = convert(value)
            elif value is None:
                row[name] = None
            elif previous is not None and name in previous:
                row[name] = previous[name]  # a TOASTed value the update did not touch
            # else: not resent by PostgreSQL and unknown here: left out
        return row

    def _change(
        self,
        op: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        begin: pgoutput.Begin,
        lsn: int,
        index: int,
    ) -> CapturedChange:
        table = self.table
        return CapturedChange(
            op=op,
            before=before,
            after=after,
            source={
                "connector": "postgresql",
                "name": self.slot,
                "db": table.database,
                "schema": table.schema,
                "table": table.table,
                "ts_ms": begin.commit_ms,
                "snapshot": False,
                "txId": begin.xid,
                "lsn": lsn,
            },
            commit_ms=begin.commit_ms,
            position=f"{table.database}:{table.qualified_name}:{begin.final_lsn}:{index}",
            fence=str(begin.xid),
        )

    def _put(self, item: Any, *, stopping: bool = True) -> None:
        self.handover.put(item, stopping=stopping)

    async def next_item(self, timeout: float) -> Any:
        """The next item the thread handed over, or None after ``timeout`` seconds."""
        return await self.handover.get(timeout)
