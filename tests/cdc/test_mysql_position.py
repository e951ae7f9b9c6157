"""The stored binlog position of a MariaDB capture keeps up with the binlog, and lock names.

The binlog test runs on a private server: on the shared one, other tests' writes would move
the position and the lag too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import MySQLChanges
from fastapi_streaming.cdc.mysql import lock_name
from fastapi_streaming.cdc.mysqlbinlog import IDLE_CHECKPOINT_BYTES, bytes_after
from fastapi_streaming.testing.private_brokers import private_mariadb, session_broker
from fastapi_streaming.testing.processes import PrivateBroker
from tests.cdc.harness import capturing, wait_until_capturing
from tests.support.mariadb import ORDERS, capture_database, sql

pytestmark = [pytest.mark.mysql, pytest.mark.cdc]

OTHER = "CREATE TABLE other (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(200))"


@pytest.fixture
def server() -> Iterator[PrivateBroker]:
    with session_broker(private_mariadb) as running:
        yield running


def fill_other(database: str, port: int) -> None:
    """About 2 MiB of binlog, all of another table, in transactions of 1,000 rows."""
    for _ in range(10):
        sql(
            "INSERT INTO other (note) SELECT REPEAT('x', 200) FROM seq_1_to_1000",
            database=database,
            port=port,
        )


def stored(database: str, port: int) -> tuple[str, int]:
    ((file, pos),) = sql(
        "SELECT file, pos FROM fastapi_streaming_cdc_positions WHERE name = %s",
        (f"{database}.orders",),
        database=database,
        port=port,
    )
    return str(file), int(pos)


async def test_an_idle_table_does_not_hold_its_stored_position_back(
    server: PrivateBroker,
) -> None:
    with capture_database(ORDERS, OTHER, port=server.port) as database:
        await follow_the_binlog(database, server)


async def follow_the_binlog(database: str, server: PrivateBroker) -> None:
    port = server.port
    streaming = StreamingAPI(broker="memory://")
    source = MySQLChanges(f"{server.url}/{database}", table=f"{database}.orders")
    streaming.changes("/tables/orders", source=source)(lambda change: change)
    async with capturing(streaming, ["tables.orders"]) as (_, inbox):
        await wait_until_capturing(streaming)
        started = stored(database, port)
        await asyncio.to_thread(fill_other, database, port)
        ((file, pos, *_),) = sql("SHOW MASTER STATUS", port=port)
        await asyncio.to_thread(fill_other, database, port)  # past the mark by more than 1 MiB
        deadline = asyncio.get_running_loop().time() + 30
        while (now := stored(database, port)) < (file, pos):
            assert asyncio.get_running_loop().time() < deadline, f"stuck at {now}"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)
        settled = stored(database, port)
        await asyncio.sleep(2)
        assert stored(database, port) == settled, "storing the position must not store it again"
        lag = streaming.producers.health()[source.name]["lag_bytes"]
        ((_, end, *_),) = sql("SHOW MASTER STATUS", port=port)
    assert started < (file, pos) <= settled
    # What the server wrote beyond the stored position: less than one checkpoint's worth.
    assert lag == end - settled[1] and 0 < lag < IDLE_CHECKPOINT_BYTES
    assert inbox.messages == []


def test_lag_counts_the_rest_of_the_file_and_the_files_after_it() -> None:
    logs = [("bin.000001", 1000), ("bin.000002", 500), ("bin.000003", 200)]
    assert bytes_after(logs, ("bin.000003", 200)) == 0
    assert bytes_after(logs, ("bin.000002", 100)) == 400 + 200
    assert bytes_after(logs, ("bin.000000", 4)) == 1700  # purged: everything listed


def test_lock_names_fit_and_long_ones_stay_apart() -> None:
    assert lock_name("app.orders") == "fastapi_streaming cdc app.orders"
    long_a, long_b = "a" * 60 + ".orders", "a" * 60 + ".orders2"
    assert len(lock_name(long_a)) <= 64 and len(lock_name(long_b)) <= 64
    assert lock_name(long_a) != lock_name(long_b)
