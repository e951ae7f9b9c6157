"""Clients that ask a table topic for a snapshot while a writer changes the table, and what
they got; see ``tests/cdc/ledger.py`` for how it is checked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx

from tests.cdc.ledger import Writer, replay
from tests.support.clients import SSEClient, receive_json, send_json, sse_stream, websocket


async def capture_streaming(base_url: str) -> None:
    # A connection per request: with several workers, each may answer (one captures).
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=no_reuse) as http:
        for _ in range(400):
            sources = (await http.get("/streams/health")).json().get("sources", {})
            if sources and all(report.get("streaming") for report in sources.values()):
                return
            await asyncio.sleep(0.05)
    raise AssertionError("capture did not start streaming")


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


async def clients_across_writes(
    base_url: str,
    address: str,
    writer: Writer,
    sentinel: Callable[[], int],
) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Four clients join ``address`` with a snapshot while ``writer`` writes (two over SSE, one
    WebSocket of the topic, one multiplexed WebSocket), at different moments; then the writer
    stops and ``sentinel()`` inserts a last row of the address. Returns each client's changes
    up to the sentinel row's, and its key."""
    ws_url = base_url.replace("http://", "ws://")
    await capture_streaming(base_url)  # its own first snapshot (of the slot) is done
    writer.start()
    try:
        await wait_for_writes(writer, 50)
        async with (
            sse_stream(base_url, f"/streams/sse{address}", snapshot="true") as first,
            websocket(f"{ws_url}/streams/ws{address}?snapshot=true") as one_topic,
        ):
            single = SocketReader(one_topic, envelope=False)
            await wait_for_writes(writer, 150)
            async with (
                sse_stream(base_url, f"/streams/sse{address}", snapshot="true") as second,
                websocket(f"{ws_url}/streams/ws") as multiplexed,
            ):
                subscribe = {"type": "subscribe", "id": 1, "topic": address, "snapshot": True}
                await send_json(multiplexed, subscribe)
                ack = await receive_json(multiplexed)
                assert ack == {"type": "ack", "id": 1}, ack
                many = SocketReader(multiplexed, envelope=True)
                await wait_for_writes(writer, 150)
                writer.stop_event.set()
                await asyncio.to_thread(writer.join)
                assert writer.error is None, writer.error
                last = await asyncio.to_thread(sentinel)
                for client in (first, second):
                    await sse_until_row(client, last)
                await single.until_row(last)
                await many.until_row(last)
    finally:
        writer.stop_event.set()
        writer.join()
    ids = [event.id for event in first.events if event.data]
    assert len(ids) == len(set(ids)), "an event id came twice"
    results = {
        "sse, first": first.data(),
        "sse, second": second.data(),
        "websocket": single.changes,
        "multiplexed websocket": many.changes,
    }
    return {name: changes_until(frames, last) for name, frames in results.items()}, last


def check_every_change_once(
    results: dict[str, list[dict[str, Any]]], expected: dict[Any, int], *, snapshot_rows: int
) -> None:
    """Each client got the snapshot (at least ``snapshot_rows`` rows), then live changes, and
    replaying them gives the table as it is: no change missed, none twice."""
    for name, changes in results.items():
        rows = sum(change["op"] == "r" for change in changes)
        assert rows >= snapshot_rows, (name, rows)
        assert len(changes) > rows, (name, "no live change arrived")
        assert replay(changes) == expected, name
