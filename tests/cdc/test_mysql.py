"""Capture from MariaDB's row-based binlog: envelope, order, snapshot, resume, errors."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import CaptureConfigurationError, MySQLChanges
from tests.cdc.harness import capturing, wait_until_capturing

pytestmark = [pytest.mark.mysql, pytest.mark.cdc]


def sql(statement: str, params: Any = None, *, database: str | None = None) -> list[Any]:
    connection = pymysql.connect(host="127.0.0.1", user="root", database=database, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return list(cursor.fetchall())
    finally:
        connection.close()


@pytest.fixture
def database() -> Iterator[str]:
    try:
        (row,) = sql("SELECT @@log_bin, @@binlog_format")
    except pymysql.MySQLError as exc:
        pytest.skip(f"MariaDB is not reachable on 127.0.0.1:3306: {exc}")
    if row != (1, "ROW"):
        pytest.skip("MariaDB runs without a row-based binlog (.ci/run turns it on)")
    name = f"cdc_{uuid.uuid4().hex[:10]}"
    sql(f"CREATE DATABASE {name}")
    sql(
        "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, "
        "item VARCHAR(50) NOT NULL, amount DECIMAL(10, 2), at DATETIME(3))",
        database=name,
    )
    try:
        yield name
    finally:
        sql(f"DROP DATABASE {name}")


def api(database: str, **options: Any) -> StreamingAPI:
    streaming = StreamingAPI(broker="memory://")
    source = MySQLChanges(
        f"mysql://root@127.0.0.1:3306/{database}", table=f"{database}.orders", **options
    )
    streaming.changes("/tables/orders", source=source)(lambda change: change)
    return streaming


async def test_snapshot_then_a_transaction_in_commit_order(database: str) -> None:
    sql("INSERT INTO orders (customer_id, item) VALUES (1, 'old')", database=database)
    streaming = api(database)
    async with capturing(streaming, ["tables.orders"]) as (_, inbox):
        await wait_until_capturing(streaming)
        statements = [
            "BEGIN",
            "INSERT INTO orders (customer_id, item, amount, at) "
            "VALUES (7, 'tea', 3.50, '2026-01-02 03:04:05.678')",
            "UPDATE orders SET item = 'green tea' WHERE customer_id = 7",
            "DELETE FROM orders WHERE customer_id = 7",
            "COMMIT",
        ]
        connection = pymysql.connect(host="127.0.0.1", user="root", database=database)
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        connection.close()
        messages = await inbox.wait_for(4)
    assert [m["data"]["op"] for m in messages] == ["r", "c", "u", "d"]
    snapshot, created, updated, deleted = (m["data"] for m in messages)
    assert snapshot["after"]["item"] == "old" and snapshot["source"]["snapshot"] is True
    assert created["after"] == {
        "id": 2, "customer_id": 7, "item": "tea", "amount": "3.50",
        "at": "2026-01-02T03:04:05.678000",
    }  # fmt: skip
    assert updated["before"]["item"] == "tea" and updated["after"]["item"] == "green tea"
    assert deleted["before"]["item"] == "green tea" and deleted["after"] is None
    source = created["source"]
    assert source["connector"] == "mysql" and source["db"] == database
    assert source["table"] == "orders" and source["file"].startswith("mariadb-bin")
    positions = [(m["data"]["source"]["file"], m["data"]["source"]["pos"]) for m in messages[1:]]
    assert positions == sorted(positions)
    assert len({m["id"] for m in messages}) == 4


async def test_a_restart_goes_on_from_the_stored_position(database: str) -> None:
    first_api = api(database)
    async with capturing(first_api, ["tables.orders"]) as (_, first):
        await wait_until_capturing(first_api)
        sql("INSERT INTO orders (customer_id, item) VALUES (1, 'a')", database=database)
        await first.wait_for(1)
    sql("INSERT INTO orders (customer_id, item) VALUES (2, 'b')", database=database)  # stopped
    second_api = api(database)
    async with capturing(second_api, ["tables.orders"]) as (_, second):
        await wait_until_capturing(second_api)
        sql("INSERT INTO orders (customer_id, item) VALUES (3, 'c')", database=database)
        await second.wait_for(2)
        await asyncio.sleep(0.5)
    items = [data["after"]["item"] for data in second.data()]
    assert items[-2:] == ["b", "c"] and set(items) <= {"a", "b", "c"}
    assert "r" not in {data["op"] for data in second.data()}  # no second snapshot


async def test_no_row_is_lost_or_doubled_at_the_snapshot_boundary(database: str) -> None:
    sql(
        "INSERT INTO orders (customer_id, item) SELECT seq, 'old' FROM seq_1_to_2000",
        database=database,
    )
    stop = threading.Event()

    def write() -> None:
        connection = pymysql.connect(
            host="127.0.0.1", user="root", database=database, autocommit=True
        )
        with connection.cursor() as cursor:
            while not stop.is_set():
                cursor.execute("INSERT INTO orders (customer_id, item) VALUES (0, 'live')")
        connection.close()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        await asyncio.sleep(0.2)
        streaming = api(database)
        async with capturing(streaming, ["tables.orders"]) as (_, inbox):
            await wait_until_capturing(streaming)
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.to_thread(writer.join)
            ((total,),) = sql("SELECT COUNT(*) FROM orders", database=database)
            await inbox.wait_for(total, timeout=60)
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        writer.join()
    ids = Counter(data["after"]["id"] for data in inbox.data())
    ops = Counter(data["op"] for data in inbox.data())
    assert ops["r"] >= 2000 and ops["c"] > 0, ops
    assert len(ids) == total and max(ids.values()) == 1


async def test_a_missing_table_and_a_wrong_dsn_name_their_fix(database: str) -> None:
    with pytest.raises(CaptureConfigurationError, match="does not exist"):
        streaming = StreamingAPI(broker="memory://")
        source = MySQLChanges(f"mysql://root@127.0.0.1:3306/{database}", table="nosuch")
        streaming.changes("/t", source=source)(lambda change: change)
        async with streaming.running():
            pass
    with pytest.raises(CaptureConfigurationError, match="Cannot connect"):
        streaming = StreamingAPI(broker="memory://")
        source = MySQLChanges("mysql://nobody@127.0.0.1:3306/nodb", table="t")
        streaming.changes("/t", source=source)(lambda change: change)
        async with streaming.running():
            pass
