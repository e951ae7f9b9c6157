"""Snapshot, then stream: every row once, whatever commits while the slot is being created."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import psycopg2
import pytest

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import PostgresChanges
from tests.cdc.harness import capturing, wait_until_capturing
from tests.support.cdc import DSN, execute

pytestmark = [pytest.mark.postgres, pytest.mark.cdc]


class Writer(threading.Thread):
    """Inserts rows one transaction at a time until stopped."""

    def __init__(self, table: str) -> None:
        super().__init__(daemon=True)
        self.table = table
        self.stop_event = threading.Event()
        self.count = 0

    def run(self) -> None:
        connection = psycopg2.connect(DSN)
        connection.autocommit = True
        with connection.cursor() as cursor:
            while not self.stop_event.is_set():
                cursor.execute(f"INSERT INTO {self.table} (item) VALUES ('live')")
                self.count += 1
        connection.close()


async def test_no_row_is_lost_or_doubled_at_the_snapshot_boundary(orders: str) -> None:
    execute(
        f"INSERT INTO {orders} (customer_id, item) "
        "SELECT n % 10, 'old' FROM generate_series(1, 2500) AS n"
    )
    execute(f"ALTER TABLE {orders} ALTER COLUMN customer_id SET DEFAULT 0")
    writer = Writer(orders)
    writer.start()
    try:
        while writer.count < 50:  # noqa: ASYNC110 - writes are under way before capture starts
            await asyncio.sleep(0.01)
        streaming = StreamingAPI(broker="memory://")
        streaming.changes("/tables/orders", source=PostgresChanges(DSN, table=f"public.{orders}"))(
            lambda change: change
        )
        async with capturing(streaming, ["tables.orders"]) as (_, inbox):
            await wait_until_capturing(streaming)
            started = writer.count
            deadline = time.monotonic() + 10
            while writer.count < started + 100 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            writer.stop_event.set()
            await asyncio.to_thread(writer.join)
            total = execute(f"SELECT count(*) FROM {orders}")[0][0]
            await inbox.wait_for(total, timeout=60)
            await asyncio.sleep(0.5)  # anything more would be a duplicate
    finally:
        writer.stop_event.set()
        writer.join()

    ops = Counter(data["op"] for data in inbox.data())
    assert ops["r"] >= 2500 and ops["c"] >= 100, ops
    ids = Counter(data["after"]["id"] for data in inbox.data())
    assert len(ids) == total
    assert max(ids.values()) == 1
    snapshot = [data for data in inbox.data() if data["op"] == "r"]
    assert all(data["source"]["snapshot"] is True for data in snapshot)
    assert inbox.data().index(snapshot[-1]) == len(snapshot) - 1  # the snapshot comes first
    assert len({message["id"] for message in inbox.messages}) == total
