"""Reading a table's row events from the binlog, in a thread of its own.

``mysql-replication`` blocks, so :class:`BinlogReader` reads in a thread and hands batches of
changes, each transaction followed by a :class:`Checkpoint` of the binlog position after it, to
the event loop through a :class:`Handover`.
"""

from __future__ import annotations

import contextlib
import random
import threading
from typing import Any

from .capture import CapturedChange, Checkpoint, Item, TableChanged
from .handover import Handover, Stopped
from .mysqlcolumns import ColumnLabels
from .table import TableInfo

#: Binlog bytes of other tables' transactions after which the position is stored anyway.
IDLE_CHECKPOINT_BYTES = 1 << 20


class BinlogReader(threading.Thread):
    """Reads the binlog from a position and hands batches of changes to the event loop."""

    def __init__(
        self,
        options: dict[str, Any],
        table: TableInfo,
        position: tuple[str, int],
        handover: Handover,
        stop: threading.Event,
        labels: ColumnLabels,
    ) -> None:
        super().__init__(name=f"cdc mysql {labels.table}", daemon=True)
        self.labels = labels
        self.options = options
        self.table = table
        self.position = position
        self.handover = handover
        self.stop_event = stop
        self.streaming = False

    def close(self) -> None:
        """Ask the thread to end; it notices within a heartbeat (closing its connection from
        here would wait for its blocking read)."""
        self.stop_event.set()

    def run(self) -> None:
        try:
            self._read()
        except Stopped:
            pass
        except BaseException as exc:
            if not self.stop_event.is_set():
                with contextlib.suppress(Stopped):
                    self.handover.put(exc, stopping=False)

    def _read(self) -> None:
        from pymysqlreplication import BinLogStreamReader
        from pymysqlreplication.event import HeartbeatLogEvent, QueryEvent, XidEvent
        from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

        options = self.options
        stream = BinLogStreamReader(
            connection_settings={
                "host": options["host"],
                "port": options["port"],
                "user": options["user"],
                "password": options["password"],
            },
            server_id=random.randint(1_000_000, 2**31),
            resume_stream=True,
            blocking=True,
            log_file=self.position[0],
            log_pos=self.position[1],
            only_events=[
                WriteRowsEvent,
                UpdateRowsEvent,
                DeleteRowsEvent,
                XidEvent,
                QueryEvent,
                HeartbeatLogEvent,
            ],
            slave_heartbeat=1,  # the blocking read returns every second: time to look at stop
            only_schemas=[self.table.database],
            only_tables=[self.table.table],
            enable_logging=False,
        )
        self.streaming = True
        labels = self.labels
        batch: list[Item] = []
        changed = False
        checkpoint = self.position
        try:
            for event in stream:
                if self.stop_event.is_set():
                    return
                if isinstance(event, HeartbeatLogEvent):
                    continue
                if isinstance(event, QueryEvent):
                    if labels.statement(event.query):  # ALTER TABLE...: the topic follows
                        batch.append(TableChanged())
                    continue
                if isinstance(event, XidEvent):
                    position = (stream.log_file, stream.log_pos)
                    if changed:
                        batch.append(Checkpoint(position))
                        self.handover.put(batch)
                        batch, changed, checkpoint = [], False, position
                    elif _far_beyond(position, checkpoint):
                        # Transactions of other tables only: move the stored position on, so
                        # a restart does not read them all again (nor need their purged files).
                        self.handover.put([Checkpoint(position)])
                        checkpoint = position
                    continue
                changed = True
                op = {WriteRowsEvent: "c", UpdateRowsEvent: "u", DeleteRowsEvent: "d"}[type(event)]
                end = event.packet.log_pos
                for index, row in enumerate(event.rows):
                    before = after = None
                    if op == "c":
                        after, relabelled = labels.label(row["values"])
                    elif op == "d":
                        before, relabelled = labels.label(row["values"])
                    else:
                        before, relabelled = labels.label(row["before_values"])
                        after, _ = labels.label(row["after_values"])
                    if relabelled:
                        batch.append(TableChanged())
                    source = {
                        "connector": "mysql",
                        "name": f"{self.table.database}.{self.table.table}",
                        "db": self.table.database,
                        "table": self.table.table,
                        "ts_ms": event.timestamp * 1000,
                        "snapshot": False,
                        "file": stream.log_file,
                        "pos": end,
                        "row": index,
                        "server_id": event.packet.server_id,
                    }
                    batch.append(
                        CapturedChange(
                            op=op,
                            before=before,
                            after=after,
                            source=source,
                            commit_ms=event.timestamp * 1000,
                            position=f"mysql:{self.table.qualified_name}:{stream.log_file}:"
                            f"{end}:{index}",
                            fence=f"{stream.log_file}:{end}",
                        )
                    )
                if len(batch) >= 1000:
                    self.handover.put(batch)
                    batch = []
        finally:
            stream.close()


def _far_beyond(position: tuple[str, int], checkpoint: tuple[str, int]) -> bool:
    """Whether the binlog went on far enough since the last checkpoint to store it again.

    Not at every transaction of another table: storing the position is itself a transaction,
    which would then be stored in turn, for ever.
    """
    return position[0] != checkpoint[0] or position[1] - checkpoint[1] >= IDLE_CHECKPOINT_BYTES


def bytes_after(logs: list[tuple[str, int]], position: tuple[str, int]) -> int:
    """Binlog bytes beyond ``position``, given ``SHOW BINARY LOGS`` (file names and sizes).

    A position in a file the server no longer lists (purged) counts every listed byte.
    """
    names = [name for name, _ in logs]
    if position[0] not in names:
        return sum(size for _, size in logs)
    at = names.index(position[0])
    return max(0, logs[at][1] - position[1]) + sum(size for _, size in logs[at + 1 :])
