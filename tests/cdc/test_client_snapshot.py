"""A new client asks for the table's current rows, then gets the live changes: across that
boundary, under concurrent writes, every change arrives exactly once and in order, over SSE
and WebSocket, from a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg2
import pytest

from tests.cdc.ledger import Writer, replay
from tests.support.cdc import DSN, capture_table, execute
from tests.support.clients import SSEClient, receive_json, send_json, sse_stream, websocket
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.cdc]

#: Rows in the table before capture starts: more than a client's queue holds (1,000), so the
#: snapshot is sent as the client reads it, while writes go on.
OLD_ROWS = 3000


@pytest.fixture
def counters() -> Iterator[str]:
    with capture_table(
        "id serial PRIMARY KEY, customer_id int NOT NULL, n int NOT NULL DEFAULT 0",
        prefix="counters",
    ) as name:
        execute(
            f"INSERT INTO {name} (customer_id, n) SELECT g % 4, 0 FROM generate_series(1, "
            f"{OLD_ROWS}) AS g"
        )
        yield name


async def capture_streaming(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        for _ in range(400):
            sources = (await http.get("/streams/health")).json().get("sources", {})
            if sources and all(report.get("streaming") for report in sources.values()):
                return
            await asyncio.sleep(0.05)
    raise AssertionError("capture did not start streaming")


def final_state(table: str, where: str = "") -> dict[Any, int]:
    return dict(execute(f"SELECT id, n FROM {table} {where}"))  # type: ignore[arg-type]


def postgres_connection() -> Any:
    connection = psycopg2.connect(DSN)
    connection.autocommit = True
    return connection


async def wait_for_writes(writer: Writer, more: int) -> None:
    target = writer.count + more
    while writer.count < target:
        assert writer.is_alive(), writer.error
        await asyncio.sleep(0.01)


def changes_until(frames: list[dict[str, Any]], sentinel: int) -> list[dict[str, Any]]:
    """The changes up to the sentinel row's insert (which says every earlier one arrived)."""
    found = [i for i, change in enumerate(frames) if change["after"]["id"] == sentinel]
    assert found, "the sentinel row did not arrive"
    return frames[: found[0]]


async def sse_until_row(client: SSEClient, key: int, timeout: float = 60) -> None:
    async def arrived() -> None:
        checked = 0
        while True:
            for event in client.events[checked:]:
                if event.data and json.loads(event.data)["after"]["id"] == key:
                    return
            checked = len(client.events)
            await client.wait_for(checked + 1, timeout=timeout)

    await asyncio.wait_for(arrived(), timeout)


class SocketReader:
    """Collects the changes of a WebSocket in the background."""

    def __init__(self, ws: Any, *, envelope: bool) -> None:
        self.ws = ws
        self.envelope = envelope
        self.changes: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = json.loads(await self.ws.recv())
            if self.envelope:
                if message.get("type") != "event":
                    continue
                message = message["data"]
            self.changes.append(message)

    async def until_row(self, key: int, timeout: float = 60) -> None:
        async def arrived() -> None:
            checked = 0
            while not any(change["after"]["id"] == key for change in self.changes[checked:]):
                checked = len(self.changes)
                assert not self.task.done() or self.task.cancelled(), self.task.exception()
                await asyncio.sleep(0.02)

        await asyncio.wait_for(arrived(), timeout)
        self.task.cancel()


async def test_every_change_once_across_the_snapshot_boundary_under_writes(
    counters: str,
) -> None:
    env = {"DATABASE_URL": DSN, "CDC_TABLE": f"public.{counters}", "BROKER_URL": "memory://"}
    writer = Writer(counters, postgres_connection)
    with ServerProcess("tests.apps.cdc_app:app", env=env) as server:
        ws_url = server.url.replace("http://", "ws://")
        await capture_streaming(server.url)  # its own first snapshot (of the slot) is done
        writer.start()
        try:
            await wait_for_writes(writer, 50)
            async with (
                sse_stream(server.url, "/streams/sse/tables/orders", snapshot="true") as first,
                websocket(f"{ws_url}/streams/ws/tables/orders?snapshot=true") as one_topic,
            ):
                single = SocketReader(one_topic, envelope=False)
                await wait_for_writes(writer, 150)
                async with (
                    sse_stream(server.url, "/streams/sse/tables/orders", snapshot="true") as second,
                    websocket(f"{ws_url}/streams/ws") as multiplexed,
                ):
                    await send_json(
                        multiplexed,
                        {"type": "subscribe", "id": 1, "topic": "/tables/orders", "snapshot": True},
                    )
                    ack = await receive_json(multiplexed)
                    assert ack == {"type": "ack", "id": 1}, ack
                    many = SocketReader(multiplexed, envelope=True)
                    await wait_for_writes(writer, 150)
                    writer.stop_event.set()
                    await asyncio.to_thread(writer.join)
                    assert writer.error is None, writer.error
                    ((sentinel,),) = execute(
                        f"INSERT INTO {counters} (customer_id, n) VALUES (0, 0) RETURNING id"
                    )
                    expected = final_state(counters, f"WHERE id <> {sentinel}")
                    for client in (first, second):
                        await sse_until_row(client, sentinel)
                    await single.until_row(sentinel)
                    await many.until_row(sentinel)
        finally:
            writer.stop_event.set()
            writer.join()
    results = {
        "sse, first": first.data(),
        "sse, second": second.data(),
        "websocket": single.changes,
        "multiplexed websocket": many.changes,
    }
    for name, frames in results.items():
        changes = changes_until(frames, sentinel)
        snapshot_rows = sum(change["op"] == "r" for change in changes)
        assert snapshot_rows >= OLD_ROWS, (name, snapshot_rows)
        assert len(changes) > snapshot_rows, (name, "no live change arrived")
        assert replay(changes) == expected, name
    ids = [event.id for event in first.events if event.data]
    assert len(ids) == len(set(ids))
