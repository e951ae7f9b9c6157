"""The stored binlog position of a MariaDB capture keeps up with the binlog, and lock names."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import MySQLChanges
from fastapi_streaming.cdc.mysql import lock_name
from tests.cdc.harness import capturing, wait_until_capturing
from tests.support.mariadb import ORDERS, capture_database, row_binlog_or_skip, sql

pytestmark = [pytest.mark.mysql, pytest.mark.cdc]

OTHER = "CREATE TABLE other (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(200))"


@pytest.fixture
def database() -> Iterator[str]:
    row_binlog_or_skip()
    with capture_database(ORDERS, OTHER) as name:
        yield name


def fill_other(database: str) -> None:
    """About 2 MiB of binlog, all of another table, in transactions of 1,000 rows."""
    for _ in range(10):
        sql(
            "INSERT INTO other (note) SELECT REPEAT('x', 200) FROM seq_1_to_1000",
            database=database,
        )


def stored(database: str) -> tuple[str, int]:
    ((file, pos),) = sql(
        "SELECT file, pos FROM fastapi_streaming_cdc_positions WHERE name = %s",
        (f"{database}.orders",),
        database=database,
    )
    return str(file), int(pos)


async def test_an_idle_table_does_not_hold_its_stored_position_back(database: str) -> None:
    streaming = StreamingAPI(broker="memory://")
    source = MySQLChanges(f"mysql://root@127.0.0.1:3306/{database}", table=f"{database}.orders")
    streaming.changes("/tables/orders", source=source)(lambda change: change)
    async with capturing(streaming, ["tables.orders"]) as (_, inbox):
        await wait_until_capturing(streaming)
        started = stored(database)
        await asyncio.to_thread(fill_other, database)
        ((file, pos, *_),) = sql("SHOW MASTER STATUS")
        await asyncio.to_thread(fill_other, database)  # past the mark by more than 1 MiB
        deadline = asyncio.get_running_loop().time() + 30
        while (now := stored(database)) < (file, pos):
            assert asyncio.get_running_loop().time() < deadline, f"stuck at {now}"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)
        settled = stored(database)
        await asyncio.sleep(2)
        assert stored(database) == settled, "storing the position must not store it again"
    assert started < (file, pos) <= settled
    assert inbox.messages == []


def test_lock_names_fit_and_long_ones_stay_apart() -> None:
    assert lock_name("app.orders") == "fastapi_streaming cdc app.orders"
    long_a, long_b = "a" * 60 + ".orders", "a" * 60 + ".orders2"
    assert len(lock_name(long_a)) <= 64 and len(lock_name(long_b)) <= 64
    assert lock_name(long_a) != lock_name(long_b)
