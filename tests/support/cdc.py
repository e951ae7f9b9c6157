"""A PostgreSQL table of its own for each change capture test, and everything it leaves behind
(slot, publication, table) dropped afterwards: an unconsumed slot would keep WAL forever."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg2
import pytest

DSN = "postgresql://postgres@127.0.0.1:5432/test"


def execute(sql: str, params: Sequence[Any] = (), *, dsn: str = DSN) -> list[tuple[Any, ...]]:
    connection = psycopg2.connect(dsn)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql, params or None)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def logical_wal_or_skip() -> None:
    try:
        level = execute("SHOW wal_level")[0][0]
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}")
    if level != "logical":
        pytest.skip("PostgreSQL runs without wal_level = logical (.ci/run turns it on)")


def drop_capture(
    slot: str, *, publication: str | None = None, table: str | None = None, dsn: str = DSN
) -> None:
    """Drop the slot (waiting until no walsender uses it), the publication and the table."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = execute(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,), dsn=dsn
        )
        if not rows:
            break
        if rows[0][0] is not None:
            execute("SELECT pg_terminate_backend(%s)", (rows[0][0],), dsn=dsn)
            time.sleep(0.2)
            continue
        try:
            execute("SELECT pg_drop_replication_slot(%s)", (slot,), dsn=dsn)
        except psycopg2.errors.ObjectInUse:
            time.sleep(0.2)
    execute(f'DROP PUBLICATION IF EXISTS "{publication or slot}"', dsn=dsn)
    if table is not None:
        execute(f"DROP TABLE IF EXISTS {table}", dsn=dsn)


@contextmanager
def capture_table(columns: str, *, prefix: str = "cdc") -> Iterator[str]:
    """Create ``public.<unique name> (columns)``; yields its name; drops what capture made."""
    logical_wal_or_skip()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    execute(f"CREATE TABLE public.{name} ({columns})")
    try:
        yield name
    finally:
        drop_capture(f"fastapi_streaming_public_{name}", table=f"public.{name}")
