"""A decoder of PostgreSQL's ``pgoutput`` logical replication messages (protocol version 1).

``pgoutput`` is built into PostgreSQL 10+, so capture needs no server extension. It sends one
message per XLogData frame: ``Begin``, then the transaction's changes, then ``Commit``, each
transaction whole and in commit order; ``Relation`` messages describe a table's columns before
its first change (and again after it changes). Values come in PostgreSQL's text format.

The layouts are those of the "Logical Replication Message Formats" chapter of the PostgreSQL
manual. Decoding is pure: bytes in, dataclasses out, so it is tested without a server.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

#: Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
POSTGRES_EPOCH_US = 946_684_800_000_000


class DecodeError(ValueError):
    """A message that is not valid pgoutput (protocol 1)."""


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    table: str
    #: ``d`` default (primary key), ``n`` nothing, ``f`` full row, ``i`` an index.
    replica_identity: str
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_ms: int
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_ms: int


#: A tuple's values in text format; ``UNCHANGED`` marks a TOASTed value the update left as is.
Values = tuple["str | Unchanged | None", ...]


class Unchanged:
    """An unchanged TOASTed column: PostgreSQL does not resend its value in an update."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = Unchanged()


@dataclass(frozen=True)
class Insert:
    relation_oid: int
    new: Values


@dataclass(frozen=True)
class Update:
    relation_oid: int
    #: The old row: its key columns (``K``), the whole row with REPLICA IDENTITY FULL (``O``),
    #: or None when the key did not change and the identity is the default.
    old: Values | None
    new: Values
    old_is_key_only: bool = False


@dataclass(frozen=True)
class Delete:
    relation_oid: int
    old: Values
    old_is_key_only: bool = True


@dataclass(frozen=True)
class Truncate:
    relation_oids: tuple[int, ...]
    cascade: bool = False
    restart_identity: bool = False


@dataclass(frozen=True)
class Other:
    """A message this capture does not need (Origin, Type, logical decoding Message)."""

    tag: str
    body: bytes = field(repr=False)


Message = Begin | Commit | Relation | Insert | Update | Delete | Truncate | Other


class _Reader:
    __slots__ = ("data", "offset")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.offset + size > len(self.data):
            raise DecodeError("message ends early")
        (value,) = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += size
        return int(value)

    def byte(self) -> str:
        if self.offset >= len(self.data):
            raise DecodeError("message ends early")
        value = chr(self.data[self.offset])
        self.offset += 1
        return value

    def string(self) -> str:
        end = self.data.find(b"\0", self.offset)
        if end < 0:
            raise DecodeError("unterminated string")
        value = self.data[self.offset : end].decode()
        self.offset = end + 1
        return value

    def tuple_data(self) -> Values:
        count = self.take("!h")
        values: list[str | Unchanged | None] = []
        for _ in range(count):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind in "tb":
                length = self.take("!i")
                raw = self.data[self.offset : self.offset + length]
                if len(raw) != length:
                    raise DecodeError("column value ends early")
                self.offset += length
                values.append(raw.decode() if kind == "t" else raw.hex())
            else:
                raise DecodeError(f"unknown column kind {kind!r}")
        return tuple(values)


def _unix_ms(postgres_us: int) -> int:
    return (postgres_us + POSTGRES_EPOCH_US) // 1000


def decode(payload: bytes) -> Message:
    """Decode one pgoutput message."""
    if not payload:
        raise DecodeError("empty message")
    reader = _Reader(payload)
    tag = reader.byte()
    if tag == "B":
        final_lsn = reader.take("!Q")
        commit_ms = _unix_ms(reader.take("!q"))
        return Begin(final_lsn, commit_ms, reader.take("!I"))
    if tag == "C":
        reader.take("!B")  # flags, unused
        commit_lsn = reader.take("!Q")
        end_lsn = reader.take("!Q")
        return Commit(commit_lsn, end_lsn, _unix_ms(reader.take("!q")))
    if tag == "R":
        oid = reader.take("!I")
        schema, table = reader.string(), reader.string()
        identity = reader.byte()
        columns = []
        for _ in range(reader.take("!h")):
            flags = reader.take("!B")
            name = reader.string()
            columns.append(Column(name, reader.take("!I"), reader.take("!i"), bool(flags & 1)))
        return Relation(oid, schema, table, identity, tuple(columns))
    if tag == "I":
        oid = reader.take("!I")
        if reader.byte() != "N":
            raise DecodeError("insert without a new tuple")
        return Insert(oid, reader.tuple_data())
    if tag == "U":
        oid = reader.take("!I")
        kind = reader.byte()
        old, key_only = None, kind == "K"
        if kind in "KO":
            old = reader.tuple_data()
            kind = reader.byte()
        if kind != "N":
            raise DecodeError("update without a new tuple")
        return Update(oid, old, reader.tuple_data(), old_is_key_only=key_only)
    if tag == "D":
        oid = reader.take("!I")
        kind = reader.byte()
        if kind not in "KO":
            raise DecodeError("delete without an old tuple")
        return Delete(oid, reader.tuple_data(), old_is_key_only=kind == "K")
    if tag == "T":
        count = reader.take("!I")
        options = reader.take("!B")
        oids = tuple(reader.take("!I") for _ in range(count))
        return Truncate(oids, bool(options & 1), bool(options & 2))
    return Other(tag, payload)
