"""A new client asks for the table's current rows, then gets the live changes: across that
boundary, under concurrent writes, every change arrives exactly once and in order, over SSE
and WebSocket, from a real server (PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import pytest

from fastapi_streaming.cdc.pgsnapshot import APPLICATION_NAME
from tests.cdc.ledger import Writer
from tests.cdc.snapshot_clients import (
    capture_streaming,
    check_every_change_once,
    clients_across_writes,
)
from tests.conftest import REDIS_URL
from tests.support.cdc import DSN, capture_table, execute
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.cdc]

#: Rows in the table before capture starts: more than a client's queue holds (1,000), so the
#: snapshot is sent as the client reads it, while writes go on.
OLD_ROWS = 3000


@pytest.fixture
def counters() -> Iterator[str]:
    with capture_table(
        "id serial PRIMARY KEY, customer_id int NOT NULL, n int NOT NULL DEFAULT 0",
        prefix="counters",
    ) as name:
        execute(
            f"INSERT INTO {name} (customer_id, n) SELECT g % 4, 0 FROM generate_series(1, "
            f"{OLD_ROWS}) AS g"
        )
        yield name


def final_state(table: str, where: str) -> dict[Any, int]:
    return {key: n for key, n in execute(f"SELECT id, n FROM {table} WHERE {where}")}


def postgres_connection() -> Any:
    connection = psycopg2.connect(DSN)
    connection.autocommit = True
    return connection


def sentinel_of(table: str, customer_id: int) -> Any:
    def insert() -> int:
        ((key,),) = execute(
            f"INSERT INTO {table} (customer_id, n) VALUES ({customer_id}, 0) RETURNING id"
        )
        return int(key)

    return insert


@pytest.mark.parametrize(
    ("broker", "workers"),
    [("memory://", 1), (REDIS_URL, 2)],
    ids=["one process", "two workers on redis"],
)
async def test_every_change_once_across_the_snapshot_boundary_under_writes(
    counters: str, broker: str, workers: int
) -> None:
    """With two workers, one captures and the kernel spreads the clients over both: a
    client's rows are read by its own worker, its live changes may come from the other one,
    through the broker."""
    env = {
        "DATABASE_URL": DSN,
        "CDC_TABLE": f"public.{counters}",
        "BROKER_URL": broker,
        "CHANNEL_PREFIX": f"{counters}.",
    }
    with ServerProcess("tests.apps.cdc_app:app", env=env, workers=workers) as server:
        results, sentinel = await clients_across_writes(
            server.url,
            "/tables/orders",
            Writer(counters, postgres_connection),
            sentinel_of(counters, 0),
        )
    expected = final_state(counters, f"id <> {sentinel}")
    check_every_change_once(results, expected, snapshot_rows=OLD_ROWS)


async def test_the_address_parameters_restrict_the_snapshot_to_their_rows(
    counters: str,
) -> None:
    execute(f"ALTER TABLE {counters} REPLICA IDENTITY FULL")  # routing by a non-key column
    env = {
        "DATABASE_URL": DSN,
        "CDC_TABLE": f"public.{counters}",
        "BROKER_URL": "memory://",
        "CDC_ROUTE_BY": "customer_id",
    }
    with ServerProcess("tests.apps.cdc_app:app", env=env) as server:
        results, sentinel = await clients_across_writes(
            server.url,
            "/tables/orders/2",
            Writer(counters, postgres_connection),
            sentinel_of(counters, 2),
        )
    expected = final_state(counters, f"customer_id = 2 AND id <> {sentinel}")
    for changes in results.values():
        assert {change["after"]["customer_id"] for change in changes} == {2}
    check_every_change_once(results, expected, snapshot_rows=OLD_ROWS // 4)


def snapshot_connections() -> int:
    (count,) = execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
        (APPLICATION_NAME,),
    )[0]
    return int(count)


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 20
    while not await asyncio.to_thread(condition):
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_client_that_leaves_mid_snapshot_frees_its_transaction(counters: str) -> None:
    """The snapshot's transaction (which holds back vacuum while open) ends when its client
    leaves, even while the rows wait for a client that stopped reading."""
    execute(f"ALTER TABLE {counters} ADD COLUMN pad text DEFAULT repeat('x', 4000)")
    env = {"DATABASE_URL": DSN, "CDC_TABLE": f"public.{counters}", "BROKER_URL": "memory://"}
    with ServerProcess("tests.apps.cdc_app:app", env=env) as server:
        await capture_streaming(server.url)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"GET /streams/sse/tables/orders?snapshot=true HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        # The client reads no further: 12 MB of rows wait, and so does the snapshot.
        await until(lambda: snapshot_connections() == 1, "no snapshot was taken")
        writer.transport.abort()
        await until(lambda: snapshot_connections() == 0, "the snapshot's transaction stayed")
