"""A client's snapshot on MariaDB: the rows in a consistent snapshot, fenced by the binlog
position MariaDB reports for it; every change once across the boundary, under writes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from tests.cdc.ledger import Writer
from tests.cdc.snapshot_clients import check_every_change_once, clients_across_writes
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.mysql, pytest.mark.cdc]

OLD_ROWS = 3000


def connection(database: str | None = None) -> Any:
    return pymysql.connect(host="127.0.0.1", user="root", database=database, autocommit=True)


def sql(statement: str, *, database: str | None = None) -> list[Any]:
    link = connection(database)
    try:
        with link.cursor() as cursor:
            cursor.execute(statement)
            return list(cursor.fetchall())
    finally:
        link.close()


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
        "CREATE TABLE counters (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, "
        "n INT NOT NULL DEFAULT 0)",
        database=name,
    )
    sql(
        f"INSERT INTO counters (customer_id, n) SELECT seq % 4, 0 FROM seq_1_to_{OLD_ROWS}",
        database=name,
    )
    try:
        yield name
    finally:
        sql(f"DROP DATABASE {name}")


async def test_every_change_once_across_a_mariadb_snapshot_boundary(database: str) -> None:
    env = {
        "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{database}",
        "CDC_TABLE": f"{database}.counters",
        "BROKER_URL": "memory://",
    }

    def sentinel() -> int:
        link = connection(database)
        try:
            with link.cursor() as cursor:
                cursor.execute("INSERT INTO counters (customer_id, n) VALUES (0, 0)")
                return int(cursor.lastrowid)
        finally:
            link.close()

    with ServerProcess("tests.apps.cdc_app:app", env=env) as server:
        results, last = await clients_across_writes(
            server.url, "/tables/orders", Writer("counters", lambda: connection(database)), sentinel
        )
    expected = dict(sql(f"SELECT id, n FROM counters WHERE id <> {last}", database=database))
    check_every_change_once(results, expected, snapshot_rows=OLD_ROWS)
