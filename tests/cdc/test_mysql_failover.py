"""MariaDB capture across the death of the capturing process: one capture, nothing lost.

Three server processes run the same declaration against the shared MariaDB and a shared Redis;
one holds the capture lease (a ``GET_LOCK`` named lock) and the others wait. They are SIGKILLed
by PID, as a crash would end them. A subscriber on the Redis channel sees what was published.
Duplicates are allowed only as documented: a change published again after a kill (read again
from the last stored binlog position) carries the id it had the first time.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
import redis.asyncio as aioredis

from tests.cdc.test_lease import holders, source_report
from tests.support.clients import sse_stream
from tests.support.mariadb import ORDERS, capture_database, row_binlog_or_skip, sql
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.mysql, pytest.mark.cdc, pytest.mark.redis]

ROWS = 10_000
PER_TRANSACTION = 10


@pytest.fixture
def database() -> Iterator[str]:
    row_binlog_or_skip()
    with capture_database(ORDERS) as name:
        yield name


@pytest.fixture
def servers(database: str, channel_prefix: str) -> Iterator[list[ServerProcess]]:
    env = {
        "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{database}",
        "CDC_TABLE": f"{database}.orders",
        "BROKER_URL": "redis://127.0.0.1:6379",
        "CHANNEL_PREFIX": channel_prefix,
    }
    started: list[ServerProcess] = []
    try:
        for _ in range(3):
            started.append(ServerProcess("tests.apps.cdc_app:app", env=env).start())
        yield started
    finally:
        for server in started:
            server.stop()
            server.log_path.unlink(missing_ok=True)


def insert(database: str, customer_id: int, item: str) -> None:
    sql(
        "INSERT INTO orders (customer_id, item) VALUES (%s, %s)",
        (customer_id, item),
        database=database,
    )


async def test_one_process_captures_and_another_takes_over_after_sigkill(
    servers: list[ServerProcess], database: str
) -> None:
    (holder,) = await holders(servers)
    others = [server for server in servers if server is not holder]
    waiting = await source_report(others[0])
    assert waiting is not None and waiting["state"] == "waiting for the lease"
    report = await source_report(holder)
    assert report is not None and report["source"] == "mysql"

    async with sse_stream(others[0].url, "/streams/sse/tables/orders") as client:
        insert(database, 1, "before")
        await client.wait_for(1, timeout=20)

        holder.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        # Committed while nobody captures: still delivered, once someone does.
        insert(database, 2, "during")
        (successor,) = await holders(others)
        takeover = time.monotonic() - killed_at
        insert(database, 3, "after")
        await client.wait_for(3, timeout=20)
        await asyncio.sleep(0.5)
        still_waiting = await source_report(next(s for s in others if s is not successor))

    events = [event for event in client.events if event.data]
    by_id: dict[str, str] = {}
    for event in events:
        item = event.json()["after"]["item"]
        assert by_id.setdefault(event.id, item) == item
    assert list(by_id.values()) == ["before", "during", "after"]
    assert still_waiting is not None and still_waiting["state"] == "waiting for the lease"
    assert takeover < 15, f"took {takeover:.1f}s to take over"
    print(f"takeover after SIGKILL: {takeover:.2f}s")


class Writer(threading.Thread):
    """Commits ``ROWS`` rows, ``PER_TRANSACTION`` at a time, numbered by ``customer_id``."""

    def __init__(self, database: str) -> None:
        super().__init__(daemon=True)
        self.database = database
        self.committed = 0

    def run(self) -> None:
        connection = pymysql.connect(host="127.0.0.1", user="root", database=self.database)
        try:
            with connection.cursor() as cursor:
                while self.committed < ROWS:
                    cursor.execute(
                        "INSERT INTO orders (customer_id, item) "
                        f"SELECT seq, 'row' FROM seq_{self.committed + 1}_to_"
                        f"{self.committed + PER_TRANSACTION}"
                    )
                    connection.commit()
                    self.committed += PER_TRANSACTION
                    time.sleep(0.004)
        finally:
            connection.close()


async def test_ten_thousand_rows_survive_two_sigkills_of_the_capturing_process(
    servers: list[ServerProcess], database: str, channel_prefix: str
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
    writer = Writer(database)
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
        customer = event["data"]["after"]["customer_id"]
        assert by_id.setdefault(event["id"], customer) == customer
    assert len(by_id) == ROWS  # every duplicate carries the id of its first publication
    print(f"takeovers: {[round(k, 2) for k in kills]}s, duplicates: {len(values) - ROWS}")
