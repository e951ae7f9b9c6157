"""MariaDB: a column added or dropped while capture runs keeps the stream going with the new
columns, labels every value with its own column (never the neighbour's after a drop), and the
topic's AsyncAPI payload follows the table."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pymysql
import pytest

from tests.support.clients import sse_stream
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.mysql, pytest.mark.cdc]


def sql(statement: str, *, database: str | None = None) -> list[Any]:
    connection = pymysql.connect(host="127.0.0.1", user="root", database=database, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
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
        "item VARCHAR(50) NOT NULL, note VARCHAR(50), amount DECIMAL(10, 2))",
        database=name,
    )
    try:
        yield name
    finally:
        sql(f"DROP DATABASE {name}")


def row_schema(document: dict[str, Any]) -> dict[str, Any]:
    (schema,) = [s for name, s in document["components"]["schemas"].items() if name.endswith("Row")]
    return schema


async def test_changes_keep_flowing_across_added_and_dropped_columns(database: str) -> None:
    env = {
        "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{database}",
        "CDC_TABLE": f"{database}.orders",
        "BROKER_URL": "memory://",
    }

    def run(statement: str) -> None:
        sql(statement, database=database)

    with ServerProcess("tests.apps.cdc_app:app", env=env) as server:
        async with (
            httpx.AsyncClient(base_url=server.url) as http,
            sse_stream(server.url, "/streams/sse/tables/orders") as client,
        ):
            run("INSERT INTO orders (customer_id, item, note, amount) VALUES (1, 'a', 'n1', 1.5)")
            await client.wait_for(1, timeout=20)
            run("ALTER TABLE orders ADD COLUMN rank INT")
            run("INSERT INTO orders (customer_id, item, amount, rank) VALUES (2, 'b', 2.5, 4)")
            await client.wait_for(2, timeout=20)
            added = row_schema((await http.get("/asyncapi.json")).json())
            run("ALTER TABLE orders DROP COLUMN item")  # a column in the middle
            run("INSERT INTO orders (customer_id, note, amount, rank) VALUES (3, 'n3', 3.5, 6)")
            await client.wait_for(3, timeout=20)
            dropped = row_schema((await http.get("/asyncapi.json")).json())
            # Dropped and added at once: as many columns as before, other names.
            run("ALTER TABLE orders DROP COLUMN note, ADD COLUMN tag VARCHAR(10)")
            run("INSERT INTO orders (customer_id, amount, rank, tag) VALUES (4, 4.5, 8, 't4')")
            await client.wait_for(4, timeout=20)
    first, second, third, fourth = (data["after"] for data in client.data())
    assert first == {"id": 1, "customer_id": 1, "item": "a", "note": "n1", "amount": "1.50"}
    assert second == {
        "id": 2, "customer_id": 2, "item": "b", "note": None, "amount": "2.50", "rank": 4,
    }  # fmt: skip
    assert third == {"id": 3, "customer_id": 3, "note": "n3", "amount": "3.50", "rank": 6}
    assert fourth == {"id": 4, "customer_id": 4, "amount": "4.50", "rank": 8, "tag": "t4"}
    assert list(added["properties"]) == ["id", "customer_id", "item", "note", "amount", "rank"]
    assert list(dropped["properties"]) == ["id", "customer_id", "note", "amount", "rank"]
