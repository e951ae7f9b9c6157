"""The change event: Debezium's envelope, typed, and an id derived from the source position.

Debezium's JSON (``op``, ``before``, ``after``, ``source``, ``ts_ms``) is what change consumers
and tools already read, so a table topic carries exactly that. The event id is a function of
where the change sits in the database's log, never of when or where it was captured: the same
change published twice (after a crash, by another worker) has the same id, so clients and
consumers can drop the duplicate, and ``Last-Event-ID`` resume works across processes.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

Row = TypeVar("Row")

#: ``c`` create (insert), ``u`` update, ``d`` delete, ``r`` read (a snapshot row),
#: ``t`` truncate (no rows: ``before`` and ``after`` are null), as in Debezium.
Op = Literal["c", "u", "d", "r", "t"]


class ChangeSource(BaseModel):
    """Where a change comes from: Debezium's ``source`` block.

    ``lsn`` (PostgreSQL) or ``file``/``pos`` (MySQL, MariaDB binlog) is the position of the
    change in the database's log; ``ts_ms`` is the commit time of its transaction.
    """

    # Debezium's other fields (sequence, xmin, gtid, query...) are kept as they come.
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, extra="allow")

    version: str = "1"
    connector: str
    name: str
    db: str
    schema_: str | None = Field(default=None, alias="schema")
    table: str
    ts_ms: int
    #: True for rows read by the initial snapshot (``op: r``). Debezium writes this as the
    #: strings ``"true"``, ``"last"`` or ``"false"``; those are accepted too.
    snapshot: bool = False
    txId: int | None = None
    lsn: int | None = None
    file: str | None = None
    pos: int | None = None
    row: int | None = None
    server_id: int | None = None

    @field_validator("snapshot", mode="before")
    @classmethod
    def _debezium_snapshot(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.lower() in (
                "true",
                "last",
                "first",
                "first_in_data_collection",
                "incremental",
            )
        return value


class Change(BaseModel, Generic[Row]):
    """One committed change of one table row, in Debezium's envelope.

    ``Change[OrderRow]`` validates ``before`` and ``after`` as ``OrderRow``; plain ``Change``
    carries them as dicts of column values.
    """

    op: Op
    before: Row | None = None
    after: Row | None = None
    source: ChangeSource
    ts_ms: int = Field(default_factory=lambda: time.time_ns() // 1_000_000)

    @property
    def row(self) -> Row | None:
        """The row as it is now: ``after``, or ``before`` for a delete."""
        return self.after if self.after is not None else self.before


def change_event_id(commit_ms: int, position: str) -> str:
    """A UUID version 7 id whose time is the commit time and whose rest hashes ``position``.

    ``position`` names the change uniquely within its database (log position and index within
    the transaction). Keeping the UUIDv7 layout lets resume find events by time in brokers
    that keep history, like every other event of the API.
    """
    digest = int.from_bytes(hashlib.blake2b(position.encode(), digest_size=10).digest(), "big")
    value = (commit_ms & (2**48 - 1)) << 80 | digest
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def iso_time(millis: int) -> str:
    """Unix milliseconds as the event's RFC 3339 time."""
    moment = datetime.fromtimestamp(millis / 1000, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
