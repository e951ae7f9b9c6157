"""Capture goes on after what would otherwise stop it: a lost lease, an unroutable change."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import Change, PostgresChanges, pgstream
from fastapi_streaming.cdc.lease import lock_key
from tests.cdc.harness import capturing, wait_until_capturing
from tests.support.cdc import DSN, execute

pytestmark = [pytest.mark.postgres, pytest.mark.cdc]


def lease_backend(slot: str) -> int | None:
    """The backend holding the capture lease of ``slot``, if any."""
    key = lock_key(f"postgresql {slot}")
    rows = execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = %s AND objid = %s AND objsubid = 1",
        ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
    )
    return int(rows[0][0]) if rows else None


async def test_a_lost_lease_ends_this_capture_and_the_next_one_streams(orders: str) -> None:
    source = PostgresChanges(DSN, table=f"public.{orders}")
    streaming = StreamingAPI(broker="memory://")
    streaming.changes("/tables/orders", source=source)(lambda change: change)
    async with capturing(streaming, ["tables.orders"]) as (_, inbox):
        await wait_until_capturing(streaming)
        first = lease_backend(source.slot)
        assert first is not None
        execute("SELECT pg_terminate_backend(%s)", (first,))
        deadline = asyncio.get_running_loop().time() + 20
        while lease_backend(source.slot) in (None, first):
            assert asyncio.get_running_loop().time() < deadline, "the lease was not taken again"
            await asyncio.sleep(0.1)
        await wait_until_capturing(streaming)
        execute(f"INSERT INTO {orders} (customer_id, item) VALUES (1, 'after the loss')")
        await inbox.wait_for(1, timeout=30)
    assert inbox.data()[0]["after"]["item"] == "after the loss"


async def test_a_change_that_cannot_be_routed_is_dropped_and_later_ones_flow(
    orders: str,
) -> None:
    await asyncio.to_thread(execute, f"ALTER TABLE {orders} REPLICA IDENTITY FULL")
    source = PostgresChanges(DSN, table=f"public.{orders}")
    streaming = StreamingAPI(broker="memory://")
    # An int convertor has no form for negative numbers: such a row has no address.
    streaming.changes("/tables/orders/{customer_id:int}", source=source)(lambda change: change)
    async with capturing(streaming, ["tables.orders.5"]) as (_, inbox):
        await wait_until_capturing(streaming)
        execute(f"INSERT INTO {orders} (customer_id, item) VALUES (-1, 'nowhere'), (5, 'ok')")
        await inbox.wait_for(1)
        report = streaming.producers.health()[source.name]
    assert [data["after"]["item"] for data in inbox.data()] == ["ok"]
    assert report["failed"] == 1


async def test_capture_stops_promptly_while_changes_are_arriving(orders: str) -> None:
    """Stopping while the replication thread hands changes over must not hang shutdown."""
    for round_ in range(8):
        streaming = StreamingAPI(broker="memory://")
        source = PostgresChanges(DSN, table=f"public.{orders}")
        streaming.changes("/tables/orders", source=source)(lambda change: change)
        async with capturing(streaming, ["tables.orders"]) as (_, inbox):
            await wait_until_capturing(streaming)
            writing = asyncio.create_task(
                asyncio.to_thread(
                    execute,
                    f"INSERT INTO {orders} (customer_id, item) "
                    "SELECT g, 'x' FROM generate_series(1, 2000) AS g",
                )
            )
            await writing
            await inbox.wait_for(2000)  # stop right as the last change arrives
            stopping = asyncio.get_running_loop().time()
        assert asyncio.get_running_loop().time() - stopping < 10, f"round {round_}"


async def test_an_idle_table_does_not_make_the_slot_hold_other_tables_wal(
    orders: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While only other tables are written, capture confirms the server's position itself.

    psycopg2's periodic status messages would advance the slot too, every few seconds; they
    are set an hour apart here, so only capture's own confirmation can move it. The server's
    keepalive requests (half of wal_sender_timeout, 30 s by default) come later than the
    deadlines here.
    """
    monkeypatch.setattr(pgstream, "STATUS_INTERVAL", 3600.0)
    source = PostgresChanges(DSN, table=f"public.{orders}")
    streaming = StreamingAPI(broker="memory://")
    streaming.changes("/tables/orders", source=source)(lambda change: change)
    other = f"{orders}_other"
    execute(f"CREATE TABLE {other} (n int)")
    query = (
        "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = %s"
    )
    try:
        async with capturing(streaming, ["tables.orders"]):
            await wait_until_capturing(streaming)
            for _ in range(5):  # the slot follows write after write
                execute(f"INSERT INTO {other} SELECT g FROM generate_series(1, 2000) AS g")
                (written,) = execute("SELECT pg_current_wal_lsn()")[0]
                deadline = asyncio.get_running_loop().time() + 20
                while not execute(query, (written, source.slot))[0][0]:
                    assert asyncio.get_running_loop().time() < deadline, "the slot holds WAL"
                    await asyncio.sleep(0.05)
    finally:
        execute(f"DROP TABLE {other}")


async def test_stopping_capture_closes_the_change_stream_before_it_returns(orders: str) -> None:
    """Capture stopped while a change is being handled (its change stream is suspended in the
    middle) ends the stream's replication thread and connection before stop() returns, so
    the slot is free for whoever captures next, instead of whenever garbage collection gets
    to the stream."""
    source = PostgresChanges(DSN, table=f"public.{orders}")
    streaming = StreamingAPI(broker="memory://")
    handling = asyncio.Event()

    @streaming.changes("/tables/orders", source=source)
    async def stuck(change: Change) -> Change:
        handling.set()
        await asyncio.Event().wait()  # never returns: capture is stopped meanwhile
        return change

    async with capturing(streaming, ["tables.orders"]):
        await wait_until_capturing(streaming)
        execute(f"INSERT INTO {orders} (customer_id, item) VALUES (1, 'x')")
        await asyncio.wait_for(handling.wait(), 20)
        await streaming.producers.items[source.name].stop()
        readers = [
            thread.name
            for thread in threading.enumerate()
            if thread.name == f"cdc {source.slot}" and thread.is_alive()
        ]
        assert readers == []
