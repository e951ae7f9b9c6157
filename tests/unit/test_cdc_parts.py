"""The database-free parts of change capture: pgoutput decoding, the envelope, the event id."""

from __future__ import annotations

import struct
import uuid

import pydantic_core
import pytest
from pydantic import BaseModel

from fastapi_streaming.cdc import Change, change_event_id, pgoutput
from fastapi_streaming.cdc.table import ColumnInfo, TableInfo, shape_row
from fastapi_streaming.replay import uuid7_millis


def text(value: str) -> bytes:
    raw = value.encode()
    return b"t" + struct.pack("!i", len(raw)) + raw


def tuple_data(*columns: bytes) -> bytes:
    return struct.pack("!h", len(columns)) + b"".join(columns)


def test_begin_relation_changes_and_commit_decode() -> None:
    begin = pgoutput.decode(b"B" + struct.pack("!Qqi", 0x16B3748, 1_000_000, 731))
    assert begin == pgoutput.Begin(0x16B3748, 946_684_801_000, 731)
    relation = pgoutput.decode(
        b"R"
        + struct.pack("!I", 16384)
        + b"public\0orders\0d"
        + struct.pack("!h", 2)
        + b"\x01id\0"
        + struct.pack("!Ii", 23, -1)
        + b"\x00item\0"
        + struct.pack("!Ii", 25, -1)
    )
    assert isinstance(relation, pgoutput.Relation)
    assert (relation.schema, relation.table, relation.replica_identity) == ("public", "orders", "d")
    assert [(c.name, c.type_oid, c.is_key) for c in relation.columns] == [
        ("id", 23, True),
        ("item", 25, False),
    ]
    insert = pgoutput.decode(b"I" + struct.pack("!I", 16384) + b"N" + tuple_data(text("1"), b"n"))
    assert insert == pgoutput.Insert(16384, ("1", None))
    update = pgoutput.decode(
        b"U"
        + struct.pack("!I", 16384)
        + b"K"
        + tuple_data(text("1"), b"n")
        + b"N"
        + tuple_data(text("2"), b"u")
    )
    assert update == pgoutput.Update(16384, ("1", None), ("2", pgoutput.UNCHANGED), True)
    delete = pgoutput.decode(b"D" + struct.pack("!I", 16384) + b"O" + tuple_data(text("2"), b"n"))
    assert delete == pgoutput.Delete(16384, ("2", None), old_is_key_only=False)
    truncate = pgoutput.decode(b"T" + struct.pack("!IBII", 2, 3, 16384, 16390))
    assert truncate == pgoutput.Truncate((16384, 16390), cascade=True, restart_identity=True)
    commit = pgoutput.decode(b"C" + struct.pack("!BQQq", 0, 0x16B3748, 0x16B3778, 1_000_000))
    assert commit == pgoutput.Commit(0x16B3748, 0x16B3778, 946_684_801_000)
    assert isinstance(pgoutput.decode(b"Y" + b"anything"), pgoutput.Other)


@pytest.mark.parametrize(
    "payload",
    [b"", b"B\x00", b"I" + struct.pack("!I", 1) + b"X", b"R" + struct.pack("!I", 1) + b"public"],
)
def test_broken_messages_raise_decode_error(payload: bytes) -> None:
    with pytest.raises(pgoutput.DecodeError):
        pgoutput.decode(payload)


def test_the_event_id_is_a_uuid7_of_the_commit_time_and_a_function_of_the_position() -> None:
    first = change_event_id(1_700_000_000_123, "test:public.orders:23811912:0")
    assert first == change_event_id(1_700_000_000_123, "test:public.orders:23811912:0")
    assert first != change_event_id(1_700_000_000_123, "test:public.orders:23811912:1")
    assert uuid.UUID(first).version == 7
    assert uuid7_millis(first) == 1_700_000_000_123


class Row(BaseModel):
    id: int


def test_the_envelope_is_debeziums_json() -> None:
    change = Change[Row].model_validate(
        {
            "op": "u",
            "before": None,
            "after": {"id": 3},
            "source": {
                "connector": "postgresql",
                "name": "slot",
                "db": "test",
                "schema": "public",
                "table": "orders",
                "ts_ms": 5,
                "snapshot": "false",  # Debezium's string form
                "lsn": 42,
            },
            "ts_ms": 6,
        }
    )
    assert change.row == Row(id=3)
    data = pydantic_core.to_json(change)
    assert b'"schema":"public"' in data and b'"snapshot":false' in data
    assert Change[Row].model_validate_json(data) == change


def test_masking_and_excluding_happen_on_the_row() -> None:
    row = {"id": 1, "email": "a@example.com", "card": None, "secret": "x"}
    shaped = shape_row(row, exclude=frozenset({"secret"}), mask=frozenset({"email", "card"}))
    assert shaped == {"id": 1, "email": "****", "card": None}


def test_the_row_model_names_fields_after_any_column() -> None:
    columns = (
        ColumnInfo("id", int, False, True),
        ColumnInfo("schema", str, True, False),
        ColumnInfo("two words", str, True, False),
    )
    model = TableInfo("db", "public", "odd_table", columns).row_model(mask=["id"])
    row = model.model_validate({"id": "****", "schema": "s", "two words": "w"})
    assert row.model_dump() == {"id": "****", "schema": "s", "two words": "w"}
    assert model.__name__ == "OddTableRow"
