"""Capture throughput from PostgreSQL into the broker (not a timed test).

    python -m benchmarks.cdc_postgres [--rows 20000] [--batch 1000] [--dsn ...]

Creates a table of its own, starts capture (memory broker, one process), inserts ``rows`` rows
in transactions of ``batch`` rows, and measures from the first commit to the last change
accepted by the broker (``benchmarks.cdc_capture``): changes per second, and this process's CPU
time per change (the replication thread included). Drops the table, slot and publication
afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from functools import partial
from typing import Any

import psycopg2

from benchmarks.cdc_capture import capture_throughput
from fastapi_streaming.cdc import PostgresChanges


def insert_rows(dsn: str, table: str, rows: int, batch: int) -> None:
    """Commit ``rows`` rows in transactions of ``batch`` (in a thread: capture runs meanwhile)."""
    writer = psycopg2.connect(dsn)
    try:
        for first in range(0, rows, batch):
            with writer, writer.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {table} (item, n) "
                    "SELECT 'item ' || n, n FROM generate_series(1, %s) AS n",
                    (min(batch, rows - first),),
                )
    finally:
        writer.close()


async def measure(dsn: str, rows: int, batch: int) -> dict[str, Any]:
    table = f"bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, item text, n int)")
    source = PostgresChanges(dsn, table=f"public.{table}", snapshot=False)
    try:
        return await capture_throughput(source, partial(insert_rows, dsn, table, rows, batch), rows)
    finally:
        slot = source.slot
        for _ in range(50):  # the replication connection ends with the API; wait for it
            cursor = admin.cursor()
            cursor.execute(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            )
            found = cursor.fetchone()
            if found is None or found[0] is None:
                break
            if _ > 20:
                cursor.execute("SELECT pg_terminate_backend(%s)", (found[0],))
            await asyncio.sleep(0.1)
        admin.cursor().execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (slot,),
        )
        admin.cursor().execute(f'DROP PUBLICATION IF EXISTS "{source.publication}"')
        admin.cursor().execute(f"DROP TABLE {table}")
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    options = parser.parse_args()
    print(asyncio.run(measure(options.dsn, options.rows, options.batch)))


if __name__ == "__main__":
    main()
