"""Misconfiguration stops the app at startup with an error that names the fix."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import CaptureConfigurationError, PostgresChanges
from fastapi_streaming.cdc.pgcheck import ensure_publication, reflect
from tests.support.cdc import DSN, capture_table, execute
from tests.support.private_postgres import PrivatePostgres

pytestmark = [pytest.mark.postgres, pytest.mark.cdc]


async def start(source: PostgresChanges, address: str = "/tables/t") -> None:
    streaming = StreamingAPI(broker="memory://")
    streaming.changes(address, source=source)(lambda change: change)
    async with streaming.running():
        pass


@pytest.fixture
def plain_table() -> Iterator[str]:
    with capture_table("id int PRIMARY KEY, note text, tags text[], spot point") as name:
        yield name


async def test_wal_level_replica_says_how_to_turn_logical_on() -> None:
    with PrivatePostgres(wal_level="replica") as server:
        execute("CREATE TABLE t (id int PRIMARY KEY)", dsn=server.dsn)
        with pytest.raises(CaptureConfigurationError) as caught:
            await start(PostgresChanges(server.dsn, table="public.t"))
    message = str(caught.value)
    assert "wal_level = replica" in message
    assert "ALTER SYSTEM SET wal_level = logical" in message and "restart" in message


async def test_a_missing_table_is_named(plain_table: str) -> None:
    with pytest.raises(CaptureConfigurationError, match=r"public\.nosuch_\w+ does not exist"):
        await start(PostgresChanges(DSN, table=f"public.nosuch_{uuid.uuid4().hex[:8]}"))


async def test_a_wrong_dsn_says_to_check_it() -> None:
    with pytest.raises(CaptureConfigurationError) as caught:
        await start(PostgresChanges("postgresql://postgres:pw@127.0.0.1:1/test", table="t"))
    message = str(caught.value)
    assert "Cannot connect" in message and "Check the DSN" in message
    assert "pw" not in message  # the password is not repeated


async def test_a_role_without_replication_is_told_to_get_it(plain_table: str) -> None:
    role = f"norepl_{uuid.uuid4().hex[:8]}"
    execute(f"CREATE ROLE {role} LOGIN")
    try:
        dsn = f"postgresql://{role}@127.0.0.1:5432/test"
        with pytest.raises(CaptureConfigurationError) as caught:
            await start(PostgresChanges(dsn, table=f"public.{plain_table}"))
    finally:
        execute(f"DROP ROLE {role}")
    assert f'ALTER ROLE "{role}" WITH REPLICATION' in str(caught.value)


async def test_a_table_without_primary_key_explains_before_and_replica_identity() -> None:
    with capture_table("note text") as name:
        with pytest.raises(CaptureConfigurationError) as caught:
            await start(PostgresChanges(DSN, table=f"public.{name}"))
        message = str(caught.value)
        assert "no primary key" in message
        assert "`before`" in message and "REPLICA IDENTITY FULL" in message
        assert "whole old row" in message
        # The app is refused before the table joins a publication: its writes still work.
        execute(f"INSERT INTO {name} VALUES ('x'); UPDATE {name} SET note = 'y'")


async def test_a_missing_named_publication_says_how_to_create_it(plain_table: str) -> None:
    source = PostgresChanges(DSN, table=f"public.{plain_table}", publication="nosuch_pub")
    with pytest.raises(CaptureConfigurationError, match='CREATE PUBLICATION "nosuch_pub"'):
        await start(source)


async def test_unsupported_column_types_are_text_with_a_warning(
    plain_table: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fastapi_streaming.cdc")
    source = PostgresChanges(DSN, table=f"public.{plain_table}")
    await start(source)
    assert source.table is not None
    types = {column.name: column.python_type for column in source.table.columns}
    assert types["tags"] is str and types["spot"] is str
    warned = " ".join(record.getMessage() for record in caplog.records)
    assert "'spot'" in warned and "point" in warned and "text form" in warned


async def test_an_address_parameter_outside_the_key_needs_the_full_old_row(
    plain_table: str,
) -> None:
    with pytest.raises(CaptureConfigurationError, match="REPLICA IDENTITY FULL"):
        await start(PostgresChanges(DSN, table=f"public.{plain_table}"), "/tables/t/{note}")
    with pytest.raises(CaptureConfigurationError, match="not columns"):
        await start(PostgresChanges(DSN, table=f"public.{plain_table}"), "/tables/t/{nope}")


class _RacingCursor:
    """A real cursor. Just before it creates the publication, another session creates the
    same one in a transaction that commits a moment later, as a second worker starting at
    the same time does: both looked, neither found it, both create it."""

    def __init__(self, cursor: Any, rival: Any) -> None:
        self.cursor = cursor
        self.rival = rival

    def execute(self, sql: str, params: Any = None) -> None:
        if sql.startswith("CREATE PUBLICATION"):
            self.rival.cursor().execute(sql)
            threading.Timer(0.3, self.rival.commit).start()
        self.cursor.execute(sql, params)

    def fetchone(self) -> Any:
        return self.cursor.fetchone()


def test_a_publication_another_worker_creates_at_the_same_time_is_used(plain_table: str) -> None:
    """The second CREATE waits on the first one's transaction, then fails on the unique index
    (not with "already exists"): that must read as "it exists", not fail the startup."""
    mine, rival = psycopg2.connect(DSN), psycopg2.connect(DSN)
    try:
        mine.autocommit = True
        cursor = mine.cursor()
        info, _ = reflect(cursor, f"public.{plain_table}")
        publication = f"fastapi_streaming_public_{plain_table}"
        ensure_publication(_RacingCursor(cursor, rival), info, publication, create=True)
        assert execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
    finally:
        mine.close()
        rival.close()
