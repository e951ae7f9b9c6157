"""10,000 rows committed while the capturing process is SIGKILLed twice: every change arrives.

Three servers capture the same table (one at a time, under the lease) into Redis; a subscriber
on the Redis channel counts what arrives. Duplicates are allowed only as documented: a change
published again after a kill carries the id it had the first time.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from typing import Any

import psycopg2
import pytest
import redis.asyncio as aioredis

from tests.cdc.test_lease import holders, servers  # noqa: F401 - the fixture
from tests.support.cdc import DSN
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.cdc, pytest.mark.redis]

ROWS = 10_000
PER_TRANSACTION = 10


class Writer(threading.Thread):
    def __init__(self, table: str) -> None:
        super().__init__(daemon=True)
        self.table = table
        self.committed = 0

    def run(self) -> None:
        connection = psycopg2.connect(DSN)
        try:
            while self.committed < ROWS:
                with connection, connection.cursor() as cursor:
                    cursor.execute(
                        f"INSERT INTO {self.table} (customer_id, item) "
                        "SELECT g, 'row' FROM generate_series(%s, %s) AS g",
                        (self.committed + 1, self.committed + PER_TRANSACTION),
                    )
                self.committed += PER_TRANSACTION
                time.sleep(0.004)
        finally:
            connection.close()


async def test_ten_thousand_rows_survive_two_sigkills_of_the_capturing_process(
    servers: list[ServerProcess],  # noqa: F811
    orders: str,
    channel_prefix: str,
) -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379")
    pubsub = client.pubsub()
    await pubsub.subscribe(channel_prefix + "tables.orders")
    received: list[dict[str, Any]] = []

    async def collect() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                received.append(json.loads(message["data"]))

    collector = asyncio.create_task(collect())
    alive = list(servers)
    kills: list[float] = []
    writer = Writer(orders)
    try:
        (holder,) = await holders(alive)
        writer.start()
        for threshold in (ROWS // 5, ROWS // 2):
            while writer.committed < threshold and writer.is_alive():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            holder.stop(signal.SIGKILL)
            alive.remove(holder)
            killed_at = time.monotonic()
            (holder,) = await holders(alive)
            kills.append(time.monotonic() - killed_at)
        await asyncio.to_thread(writer.join)

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if len({event["data"]["after"]["customer_id"] for event in received}) >= ROWS:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
    finally:
        collector.cancel()
        await pubsub.aclose()
        await client.aclose()

    values = [event["data"]["after"]["customer_id"] for event in received]
    assert set(values) == set(range(1, ROWS + 1)), f"missing {ROWS - len(set(values))}"
    by_id: dict[str, int] = {}
    for event in received:
        assert (
            by_id.setdefault(event["id"], event["data"]["after"]["customer_id"])
            == (event["data"]["after"]["customer_id"])
        )
    assert len(by_id) == ROWS  # every duplicate carries the id of its first publication
    print(f"takeovers: {[round(k, 2) for k in kills]}s, duplicates: {len(values) - ROWS}")
