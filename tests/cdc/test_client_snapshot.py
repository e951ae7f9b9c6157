"""A new client asks for the table's current rows, then gets the live changes: across that
boundary, under concurrent writes, every change arrives exactly once and in order, over SSE
and WebSocket, from a real server (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest

from tests.cdc.ledger import Writer
from tests.cdc.snapshot_clients import check_every_change_once, clients_across_writes
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


async def test_every_change_once_across_the_snapshot_boundary_under_writes(
    counters: str,
) -> None:
    env = {"DATABASE_URL": DSN, "CDC_TABLE": f"public.{counters}", "BROKER_URL": "memory://"}
    with ServerProcess("tests.apps.cdc_app:app", env=env) as server:
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
