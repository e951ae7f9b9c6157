"""Capture throughput from MariaDB/MySQL's binlog into the broker (not a timed test).

    python -m benchmarks.cdc_mysql [--rows 20000] [--batch 1000] [--dsn mysql://...]

Creates a database of its own, starts capture (memory broker, one process), inserts ``rows``
rows in transactions of ``batch`` rows, and measures from the first commit to the last change
accepted by the broker, as ``benchmarks.cdc_postgres`` does (``benchmarks.cdc_capture``):
changes per second, and this process's CPU time per change (the binlog reading thread
included). Drops the database afterwards. The server needs a row-based binlog.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from functools import partial
from typing import Any

import pymysql

from benchmarks.cdc_capture import capture_throughput
from fastapi_streaming.cdc import MySQLChanges
from fastapi_streaming.cdc.mysqlcheck import connect, settings


def insert_rows(options: dict[str, Any], rows: int, batch: int) -> None:
    """Commit ``rows`` rows in transactions of ``batch`` (in a thread: capture runs meanwhile)."""
    writer = pymysql.connect(**options)
    try:
        with writer.cursor() as cursor:
            for first in range(0, rows, batch):
                cursor.execute(
                    "INSERT INTO bench (item, n) SELECT CONCAT('item ', seq), seq "
                    f"FROM seq_1_to_{min(batch, rows - first)}"
                )
                writer.commit()
    finally:
        writer.close()


async def measure(dsn: str, rows: int, batch: int) -> dict[str, Any]:
    server = settings(dsn)
    database = f"bench_{uuid.uuid4().hex[:10]}"
    admin = connect(server)
    admin.cursor().execute(f"CREATE DATABASE {database}")
    options = {**server, "database": database}
    try:
        admin.cursor().execute(
            f"CREATE TABLE {database}.bench "
            "(id INT AUTO_INCREMENT PRIMARY KEY, item VARCHAR(50), n INT)"
        )
        source = MySQLChanges(
            dsn.rsplit("/", 1)[0] + f"/{database}", table=f"{database}.bench", snapshot=False
        )
        return await capture_throughput(source, partial(insert_rows, options, rows, batch), rows)
    finally:
        admin.cursor().execute(f"DROP DATABASE {database}")
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="mysql://root@127.0.0.1:3306/mysql")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    options = parser.parse_args()
    print(asyncio.run(measure(options.dsn, options.rows, options.batch)))


if __name__ == "__main__":
    main()
