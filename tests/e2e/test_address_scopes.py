"""Scopes that name address parameters (``rooms:{room}:read``) on every transport and WebSub:
a token for room 42 reaches room 42 and never room 43, and a request naming both is refused
whole."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.test_limits import app_env, bearer, token
from tests.support.clients import receive_json, send_json, sse_stream
from tests.support.server import ServerProcess
from tests.support.websub import Subscriber

ROOM_42 = "rooms:42:read rooms:42:write"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    hub_db = Path(tmp_path_factory.mktemp("hub")) / "hub.db"
    env = app_env("memory://", WEBSUB_DATABASE_URL=f"sqlite+aiosqlite:///{hub_db}")
    with ServerProcess("tests.apps.limits_app:app", env=env) as running:
        yield running


async def test_sse(server: ServerProcess) -> None:
    access = token("ann", scope=ROOM_42)
    async with httpx.AsyncClient(base_url=server.url) as http:
        other = await http.get("/streams/sse/rooms/43", params={"access_token": access})
        both = await http.get(
            "/streams/sse", params={"topic": ["/rooms/42", "/rooms/43"], "access_token": access}
        )
    assert other.status_code == 403
    assert 'scope="rooms:43:read"' in other.headers["WWW-Authenticate"]
    assert both.status_code == 403  # all or nothing
    async with (
        sse_stream(server.url, "/streams/sse/rooms/42", access_token=access) as own,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        assert own.response is not None and own.response.status_code == 200
        await http.post(
            "/streams/publish/rooms/42", json={"n": 1}, headers=bearer("ann", scope=ROOM_42)
        )
        await own.wait_for(1)
    assert own.data() == [{"n": 1}]


async def test_http_publish(server: ServerProcess) -> None:
    headers = bearer("ann", scope=ROOM_42)
    async with httpx.AsyncClient(base_url=server.url) as http:
        own = await http.post("/streams/publish/rooms/42", json={}, headers=headers)
        other = await http.post("/streams/publish/rooms/43", json={}, headers=headers)
        literal = await http.post(
            "/streams/publish/rooms/43", json={}, headers=bearer("x", scope="rooms:{room}:write")
        )
    assert own.status_code == 202
    assert other.status_code == 403
    assert other.json()["detail"].endswith("rooms:43:write.") or "rooms:43:write" in str(
        other.json()["detail"]
    )
    assert literal.status_code == 403  # the template itself grants nothing


async def test_websocket_of_one_topic(server: ServerProcess) -> None:
    access = token("ann", scope=ROOM_42)
    async with connect(f"{server.ws_url}/streams/ws/rooms/42?access_token={access}"):
        pass
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.ws_url}/streams/ws/rooms/43?access_token={access}"):
            pass
    assert refused.value.response.status_code == 403


async def test_multiplexed_websocket(server: ServerProcess) -> None:
    access = token("ann", scope=ROOM_42)
    async with connect(f"{server.ws_url}/streams/ws?access_token={access}") as ws:
        await send_json(ws, {"type": "subscribe", "id": 1, "topic": "/rooms/42"})
        assert await receive_json(ws) == {"type": "ack", "id": 1}
        # Allowed for room 42 does not carry over to room 43 (checked per address).
        await send_json(ws, {"type": "subscribe", "id": 2, "topic": "/rooms/43"})
        refused = await receive_json(ws)
        await send_json(ws, {"type": "publish", "id": 3, "topic": "/rooms/43", "data": {}})
        refused_publish = await receive_json(ws)
        await send_json(ws, {"type": "publish", "id": 4, "topic": "/rooms/42", "data": {"n": 4}})
        replies = [await receive_json(ws), await receive_json(ws)]
    assert refused["type"] == "error" and refused["code"] == 403
    assert "rooms:43:read" in json.dumps(refused)
    assert refused_publish["code"] == 403 and "rooms:43:write" in json.dumps(refused_publish)
    assert {reply["type"] for reply in replies} == {"ack", "event"}


async def test_websub(server: ServerProcess) -> None:
    access = bearer("ann", scope=ROOM_42)
    async with Subscriber() as subscriber, httpx.AsyncClient(base_url=server.url) as http:
        discover_other = await http.get("/streams/websub/rooms/43", headers=access)
        discover_own = await http.get("/streams/websub/rooms/42", headers=access)
        callback = subscriber.behave("/room43")
        answer = await http.post(
            "/streams/websub/hub",
            data={
                "hub.mode": "subscribe",
                "hub.topic": f"{server.url}/streams/websub/rooms/43",
                "hub.callback": callback,
            },
            headers=access,
        )
        await subscriber.wait_until(lambda: len(subscriber.denials("/room43")) == 1)
        denial = subscriber.denials("/room43")[0].query
        own_callback = subscriber.behave("/room42")
        own = await http.post(
            "/streams/websub/hub",
            data={
                "hub.mode": "subscribe",
                "hub.topic": f"{server.url}/streams/websub/rooms/42",
                "hub.callback": own_callback,
            },
            headers=access,
        )
        await subscriber.wait_until(lambda: len(subscriber.verifications("/room42")) == 1)
        # The hub activates the subscription just after the subscriber confirms: publish until
        # an event is delivered (an event published before that is not for this subscription).
        deadline = time.monotonic() + 15
        while not subscriber.deliveries("/room42"):
            assert time.monotonic() < deadline, "nothing was delivered to room 42's subscriber"
            published = await http.post("/streams/publish/rooms/42", json={}, headers=access)
            assert published.status_code == 202
            await asyncio.sleep(0.3)
        delivered = len(subscriber.deliveries("/room42"))
        metrics = (await http.get("/metrics")).text
    assert discover_other.status_code == 403
    assert discover_own.status_code in (200, 204)
    assert answer.status_code == 202  # WebSub 5.1.2: refusal comes at the callback
    assert "rooms:43:read" in denial["hub.reason"]
    assert own.status_code == 202
    assert subscriber.verifications("/room43") == []
    counted = [line for line in metrics.splitlines() if 'outcome="delivered"' in line]
    assert counted and 1 <= float(counted[0].rsplit(" ", 1)[1]) <= delivered
