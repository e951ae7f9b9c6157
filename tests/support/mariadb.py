"""MariaDB for change capture tests: statements, and a database of its own for each test.

The shared server on 127.0.0.1:3306 (root, no password, row-based binlog) is never stopped or
reconfigured; tests that restart MariaDB or need the binlog off start a private server with
:func:`fastapi_streaming.testing.private_brokers.private_mariadb`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pytest

SHARED_PORT = 3306
ORDERS = (
    "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, "
    "item VARCHAR(50) NOT NULL, amount DECIMAL(10, 2), at DATETIME(3))"
)


def sql(
    statement: str,
    params: Any = None,
    *,
    database: str | None = None,
    port: int = SHARED_PORT,
    user: str = "root",
    password: str = "",
) -> list[Any]:
    connection = pymysql.connect(
        host="127.0.0.1",
        port=port,
        user=user,
        password=password,
        database=database,
        autocommit=True,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return list(cursor.fetchall())
    finally:
        connection.close()


def row_binlog_or_skip(port: int = SHARED_PORT) -> None:
    try:
        (row,) = sql("SELECT @@log_bin, @@binlog_format", port=port)
    except pymysql.MySQLError as exc:
        pytest.skip(f"MariaDB is not reachable on 127.0.0.1:{port}: {exc}")
    if row != (1, "ROW"):
        pytest.skip("MariaDB runs without a row-based binlog (.ci/run turns it on)")


@contextmanager
def capture_database(*tables: str, port: int = SHARED_PORT) -> Iterator[str]:
    """A new database holding ``tables`` (``CREATE TABLE`` statements); dropped afterwards."""
    name = f"cdc_{uuid.uuid4().hex[:10]}"
    sql(f"CREATE DATABASE {name}", port=port)
    try:
        for table in tables:
            sql(table, database=name, port=port)
        yield name
    finally:
        try:
            sql(f"DROP DATABASE {name}", port=port)
        except pymysql.MySQLError:  # a private server already stopped for good
            pass
