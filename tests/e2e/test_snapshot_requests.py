"""Asking a topic that has no snapshot (not a table) for one is a client error on every
transport, which names the fix; the socket and the other subscriptions stay."""

from __future__ import annotations

import httpx
import pytest
from websockets.exceptions import ConnectionClosedError

from tests.support.clients import receive_json, send_json, websocket
from tests.support.server import ServerProcess


async def test_a_snapshot_of_a_topic_without_one_is_refused_with_the_fix() -> None:
    with ServerProcess("tests.apps.core_app:app") as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            answer = await http.get("/streams/sse/alerts", params={"snapshot": "true"})
        assert answer.status_code == 400
        assert "subscribe without asking for a snapshot" in answer.json()["detail"]

        async with websocket(f"{server.ws_url}/streams/ws") as ws:
            asked = {"type": "subscribe", "id": 1, "topic": "/alerts", "snapshot": True}
            await send_json(ws, asked)
            error = await receive_json(ws)
            assert (error["type"], error["id"], error["code"]) == ("error", 1, 400)
            await send_json(ws, {**asked, "snapshot": "yes"})
            error = await receive_json(ws)
            assert (error["code"], error["detail"]) == (400, '"snapshot" must be true or false.')
            await send_json(ws, {"type": "subscribe", "id": 3, "topic": "/alerts"})
            assert await receive_json(ws) == {"type": "ack", "id": 3}

        with pytest.raises(ConnectionClosedError) as closed:
            async with websocket(f"{server.ws_url}/streams/ws/alerts?snapshot=true") as ws:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
