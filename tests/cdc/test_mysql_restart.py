"""MariaDB restarts while capture runs: every committed change still arrives.

The shared MariaDB is never restarted: the test runs its own server (own data folder, port and
socket, row-based binlog), stopped and started again by its PID.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import MySQLChanges
from fastapi_streaming.testing.private_brokers import private_mariadb, session_broker
from fastapi_streaming.testing.processes import PrivateBroker
from tests.cdc.harness import capturing, wait_until_capturing
from tests.support.mariadb import capture_database, sql

pytestmark = [pytest.mark.mysql, pytest.mark.cdc]


@pytest.fixture
def mariadb() -> Iterator[PrivateBroker]:
    with session_broker(private_mariadb) as server:
        yield server


def insert(database: str, port: int, first: int, last: int) -> None:
    sql(
        f"INSERT INTO items (n) SELECT seq FROM seq_{first}_to_{last}",
        database=database,
        port=port,
    )


async def test_a_mariadb_restart_loses_no_committed_change(mariadb: PrivateBroker) -> None:
    table = "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL)"
    with capture_database(table, port=mariadb.port) as database:
        streaming = StreamingAPI(broker="memory://")
        source = MySQLChanges(f"{mariadb.url}/{database}", table=f"{database}.items")
        streaming.changes("/tables/items", source=source)(lambda change: change)
        async with capturing(streaming, ["tables.items"]) as (_, inbox):
            await wait_until_capturing(streaming)
            await asyncio.to_thread(insert, database, mariadb.port, 1, 100)
            await inbox.wait_for(100)
            # Committed right before the stop: maybe read, maybe not, never lost.
            await asyncio.to_thread(insert, database, mariadb.port, 101, 200)
            await mariadb.stop()
            await mariadb.start()
            await asyncio.to_thread(insert, database, mariadb.port, 201, 300)
            await wait_until_capturing(streaming, timeout=60)
            deadline = asyncio.get_running_loop().time() + 60
            while len({data["after"]["n"] for data in inbox.data()}) < 300:
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.1)
            report = streaming.producers.health()[source.name]
        numbers = {data["after"]["n"] for data in inbox.data()}
        assert numbers == set(range(1, 301)), f"missing {sorted(set(range(1, 301)) - numbers)}"
        by_id: dict[str, int] = {}
        for message in inbox.messages:  # a change sent again keeps its id
            n = message["data"]["after"]["n"]
            assert by_id.setdefault(message["id"], n) == n
        assert len(by_id) == 300
        assert report["state"] == "capturing"
