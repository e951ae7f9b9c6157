"""PostgreSQL restarts while capture runs: every committed change still arrives."""

from __future__ import annotations

import asyncio

import pytest

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import PostgresChanges
from tests.cdc.harness import capturing, wait_until_capturing
from tests.support.cdc import execute
from tests.support.private_postgres import PrivatePostgres

pytestmark = [pytest.mark.postgres, pytest.mark.cdc]


async def test_a_database_restart_loses_no_committed_change() -> None:
    with PrivatePostgres(wal_level="logical") as server:
        execute("CREATE TABLE items (id serial PRIMARY KEY, n int NOT NULL)", dsn=server.dsn)
        streaming = StreamingAPI(broker="memory://")
        source = PostgresChanges(server.dsn, table="public.items")
        streaming.changes("/tables/items", source=source)(lambda change: change)
        async with capturing(streaming, ["tables.items"]) as (_, inbox):
            await wait_until_capturing(streaming)
            insert = "INSERT INTO items (n) SELECT g FROM generate_series(%s, %s) AS g"
            execute(insert, (1, 100), dsn=server.dsn)
            await inbox.wait_for(100)
            execute(insert, (101, 200), dsn=server.dsn)  # maybe not captured before the stop
            await asyncio.to_thread(server.restart)
            execute(insert, (201, 300), dsn=server.dsn)
            await wait_until_capturing(streaming, timeout=30)
            deadline = asyncio.get_running_loop().time() + 30
            while len({data["after"]["n"] for data in inbox.data()}) < 300:
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.1)
            report = streaming.producers.health()[source.name]
        numbers = {data["after"]["n"] for data in inbox.data()}
        assert numbers == set(range(1, 301))
        by_id: dict[str, int] = {}
        for message in inbox.messages:  # a change sent again keeps its id
            n = message["data"]["after"]["n"]
            assert by_id.setdefault(message["id"], n) == n
        assert report["state"] == "capturing"
