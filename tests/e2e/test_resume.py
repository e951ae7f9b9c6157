"""Reconnecting clients get what they missed, or a ``gap`` signal: never a silent hole.

On a broker without history the process's own replay buffer serves resumes (best effort): it
holds the recent events of addresses this process is subscribed to, so these tests keep one
client connected while another one is away.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from tests.support.clients import post, receive_json, send_json, sse_stream, websocket
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess("tests.apps.core_app:app", env={"BROKER_URL": "memory://"}) as running:
        yield running


async def publish(server: ServerProcess, room: int, texts: list[str]) -> list[str]:
    ids = []
    for text in texts:
        answer = await post(server.url, f"/streams/publish/rooms/{room}", json={"text": text})
        ids.append(answer.json()["id"])
    return ids


async def test_sse_resumes_after_last_event_id_with_each_missed_event_once(
    server: ServerProcess,
) -> None:
    async with sse_stream(server.url, "/streams/sse/rooms/11") as keeper:
        async with sse_stream(server.url, "/streams/sse/rooms/11") as first:
            await publish(server, 11, ["a", "b"])
            seen = await first.wait_for(2)
        missed_ids = await publish(server, 11, [f"m{n}" for n in range(20)])
        await keeper.wait_for(22)

        last = seen[-1].id
        async with sse_stream(server.url, "/streams/sse/rooms/11", last_event_id=last) as again:
            live_ids = await publish(server, 11, ["live"])
            events = await again.wait_for(21)
    assert [event.id for event in events] == [*missed_ids, *live_ids]
    assert all(event.event == "message" for event in events), "no gap: history was complete"


async def test_sse_resume_beyond_history_starts_with_a_gap_signal(server: ServerProcess) -> None:
    stale = str(uuid.UUID(int=(1 << 76) | (0x7 << 76) | (0x2 << 62)))  # year 1970, version 7
    async with sse_stream(server.url, "/streams/sse/rooms/12") as keeper:
        ids = await publish(server, 12, ["x", "y"])
        await keeper.wait_for(2)
        async with sse_stream(server.url, "/streams/sse/rooms/12", last_event_id=stale) as again:
            events = await again.wait_for(3)
    assert events[0].event == "gap"
    gap = json.loads(events[0].data)
    assert gap["topic"] == "/rooms/12" and gap["last_event_id"] == stale
    assert [event.id for event in events[1:]] == ids, "what history holds still comes"


async def test_unknown_id_of_another_kind_gets_a_gap_too(server: ServerProcess) -> None:
    async with sse_stream(server.url, "/streams/sse/rooms/13", last_event_id="nonsense") as s:
        await publish(server, 13, ["after"])
        events = await s.wait_for(2)
    assert [event.event for event in events] == ["gap", "message"]


async def test_websocket_subscribe_resumes_after_last_event_id(server: ServerProcess) -> None:
    async with sse_stream(server.url, "/streams/sse/rooms/14") as keeper:
        first_ids = await publish(server, 14, ["1", "2", "3"])
        await keeper.wait_for(3)
        async with websocket(server.ws_url + "/streams/ws") as ws:
            await send_json(
                ws,
                {"type": "subscribe", "id": 1, "topic": "/rooms/14", "last_event_id": first_ids[0]},
            )
            ack = await receive_json(ws)
            replayed = [await receive_json(ws), await receive_json(ws)]
    assert ack == {"type": "ack", "id": 1}
    assert [event["id"] for event in replayed] == first_ids[1:]


async def test_one_topic_websocket_resumes_from_the_query(server: ServerProcess) -> None:
    async with sse_stream(server.url, "/streams/sse/rooms/15") as keeper:
        ids = await publish(server, 15, ["p", "q"])
        await keeper.wait_for(2)
        path = f"/streams/ws/rooms/15?last_event_id={ids[0]}"
        async with websocket(server.ws_url + path) as ws:
            assert (await receive_json(ws))["text"] == "q"
