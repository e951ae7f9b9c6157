"""A resume whose history is ahead of the process's live stream sends each event once.

A resume reads the broker's history (here Redis Streams) at once, while the process's topic
stream delivers what the broker holds a little later: on a busy process, or one that has just
reconnected and is reading its backlog. The events in between came twice: replayed, then live
(2 to 30 duplicates at resuming clients per quick soak run on ``redis-stream://``). The lag is
made deterministic with ``tests.apps.gated_app``: its subscribe handler holds the live delivery
of one event until the test opens the gate, while resumes read past it.

A private redis-server per test (no persistence), stopped by its PID; a real uvicorn server;
httpx-sse and websockets clients.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from tests.support.brokers import RedisProcess
from tests.support.clients import receive_json, send_json, sse_stream, websocket
from tests.support.server import ServerProcess

pytestmark = pytest.mark.redis

TOPIC = "/gated/1"


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    redis = RedisProcess().start()
    try:
        env = {"BROKER_URL": f"redis-stream://127.0.0.1:{redis.port}"}
        with ServerProcess("tests.apps.gated_app:app", env=env) as running:
            yield running
    finally:
        redis.stop()


async def publish(http: httpx.AsyncClient, text: str, *, hold: bool = False) -> str:
    answer = await http.post(f"/streams/publish{TOPIC}", json={"text": text, "hold": hold})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


async def wait_at_gate(http: httpx.AsyncClient) -> None:
    """Until the live stream is held at the gate (a bounded wait, not a timed assertion)."""
    for _ in range(400):
        if (await http.get("/test/gate")).json()["waiting"]:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the live delivery never reached the gate")


class Resumed:
    """A client resumed from an event id over one transport; collects the ids it receives."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.signals: list[str] = []
        self.arrived = asyncio.Event()

    def add(self, kind: str, event_id: str | None) -> None:
        if kind == "event" and event_id is not None:
            self.ids.append(event_id)
        else:
            self.signals.append(kind)
        self.arrived.set()

    async def wait_for(self, event_id: str) -> list[str]:
        async def seen() -> None:
            while event_id not in self.ids:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(seen(), 15)
        return self.ids


@asynccontextmanager
async def resumed(server: ServerProcess, transport: str, last_id: str) -> AsyncIterator[Resumed]:
    client = Resumed()
    if transport == "sse":
        headers = {"Last-Event-ID": last_id}
        async with sse_stream(server.url, f"/streams/sse{TOPIC}", headers=headers) as sse:

            async def copy() -> None:
                done = 0
                while True:
                    await sse.arrived.wait()
                    sse.arrived.clear()
                    for event in sse.events[done:]:
                        if event.data:  # heartbeats leave empty blocks
                            kind = "event" if event.event == "message" else event.event
                            client.add(kind, event.id or None)
                    done = len(sse.events)

            task = asyncio.create_task(copy())
            try:
                yield client
            finally:
                task.cancel()
        return
    async with websocket(server.ws_url + "/streams/ws") as ws:
        subscribe = {"type": "subscribe", "id": 1, "topic": TOPIC, "last_event_id": last_id}
        await send_json(ws, subscribe)

        async def read(ws: ClientConnection) -> None:
            while True:
                message = await receive_json(ws, timeout=60)
                kind = message["type"]
                client.add(kind, message.get("id") if kind == "event" else None)

        task = asyncio.create_task(read(ws))
        try:
            yield client
        finally:
            task.cancel()


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_events_a_resume_replayed_or_the_client_had_do_not_come_again_live(
    server: ServerProcess, transport: str
) -> None:
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        sse_stream(server.url, f"/streams/sse{TOPIC}") as live,
    ):
        first = await publish(http, "one")
        await live.wait_for(1)
        held = await publish(http, "two", hold=True)
        third = await publish(http, "three")
        await wait_at_gate(http)  # the live stream is stuck before "two"; Redis holds all three

        # One client resumes from "one" (it missed "two" and "three"); another from "three", as
        # if another process had already delivered everything to it.
        async with (
            resumed(server, transport, first) as behind,
            resumed(server, transport, third) as caught_up,
        ):
            assert await behind.wait_for(third) == [held, third]  # replayed from history
            await http.post("/test/gate")  # the live stream delivers "two" and "three" now
            fourth = await publish(http, "four")
            assert await behind.wait_for(fourth) == [held, third, fourth]
            assert await caught_up.wait_for(fourth) == [fourth]
            assert behind.signals == caught_up.signals == (["ack"] if transport != "sse" else [])
        assert [json.loads(event.data)["text"] for event in live.events if event.data] == [
            "one",
            "two",
            "three",
            "four",
        ]
