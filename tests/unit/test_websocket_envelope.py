"""The socket of one topic can carry event ids, so a client can resume with them."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_streaming import StreamingAPI


def make_app() -> FastAPI:
    streaming = StreamingAPI()

    @streaming.subscribe("/ticks/{n}")
    async def ticks(event: int, n: int) -> int:
        return event

    @streaming.publish("/ticks/{n}")
    async def tick(event: int, n: int) -> int:
        return event

    app = FastAPI()
    streaming.init_app(app)
    return app


def test_plain_frames_stay_the_data_alone() -> None:
    with TestClient(make_app()) as client, client.websocket_connect("/streams/ws/ticks/1") as ws:
        client.post("/streams/publish/ticks/1", json=5)
        assert ws.receive_text() == "5"


def test_envelope_frames_carry_the_id_a_client_resumes_from() -> None:
    with TestClient(make_app()) as client:
        # Another client keeps the topic's stream (and the memory broker's recent events) alive.
        with client.websocket_connect("/streams/ws/ticks/2") as other:
            with client.websocket_connect("/streams/ws/ticks/2?envelope=true") as ws:
                first = client.post("/streams/publish/ticks/2", json=1).json()
                frame = ws.receive_json()
            assert frame["type"] == "event" and frame["topic"] == "/ticks/2"
            assert frame["id"] == first["id"] and frame["data"] == 1
            missed = client.post("/streams/publish/ticks/2", json=2).json()
            url = f"/streams/ws/ticks/2?envelope=true&last_event_id={frame['id']}"
            with client.websocket_connect(url) as ws:
                resumed = ws.receive_json()
            assert [other.receive_text(), other.receive_text()] == ["1", "2"]
    assert (resumed["id"], resumed["data"]) == (missed["id"], 2)
