"""What a FastAPI developer expects of handlers: overrides, Security, SecurityScopes."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, HTTPException, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI
from fastapi_streaming.testing import stream_events


class Reading(BaseModel):
    value: float


def unit() -> str:
    return "celsius"


def factor(name: Annotated[str, Depends(unit)]) -> float:
    return 1.0 if name == "celsius" else 100.0


bearer = HTTPBearer()
SEEN_SCOPES: list[list[str]] = []


def user(scopes: SecurityScopes, token: HTTPAuthorizationCredentials = Depends(bearer)) -> str:
    SEEN_SCOPES.append(scopes.scopes)
    if token.credentials != "good":
        raise HTTPException(403, "bad token")
    return "ann"


def make_app() -> FastAPI:
    streaming = StreamingAPI()

    @streaming.subscribe("/readings")
    async def readings(event: Reading, scale: Annotated[float, Depends(factor)]) -> Reading:
        return Reading(value=event.value * scale)

    @streaming.publish("/readings")
    async def publish_reading(event: Reading) -> Reading:
        return event

    @streaming.subscribe("/notes")
    async def notes(event: dict[str, str]) -> dict[str, str]:
        return event

    @streaming.publish("/notes")
    async def write_note(
        event: dict[str, str], author: Annotated[str, Security(user, scopes=["notes:write"])]
    ) -> dict[str, str]:
        return {**event, "author": author}

    app = FastAPI()
    streaming.init_app(app)
    return app


def test_overrides_reach_the_dependencies_of_subscribe_handlers() -> None:
    app = make_app()
    with TestClient(app) as client:
        with stream_events(client, "/streams/sse/readings") as events:
            client.post("/streams/publish/readings", json={"value": 2})
            assert next(events).json() == {"value": 2.0}
            app.dependency_overrides[unit] = lambda: "percent"  # a dependency of a dependency
            client.post("/streams/publish/readings", json={"value": 2})
            assert next(events).json() == {"value": 200.0}
            app.dependency_overrides.clear()
            client.post("/streams/publish/readings", json={"value": 3})
            assert next(events).json() == {"value": 3.0}


def test_an_override_may_take_dependencies_of_its_own() -> None:
    app = make_app()

    def fixed(name: Annotated[str, Depends(unit)]) -> float:
        return 10.0 if name == "celsius" else 0.0

    app.dependency_overrides[factor] = fixed
    with TestClient(app) as client, stream_events(client, "/streams/sse/readings") as events:
        client.post("/streams/publish/readings", json={"value": 2})
        assert next(events).json() == {"value": 20.0}


@pytest.mark.parametrize("token, status", [("good", 202), ("bad", 403)])
def test_security_dependencies_work_over_http(token: str, status: int) -> None:
    SEEN_SCOPES.clear()
    with TestClient(make_app()) as client:
        answer = client.post(
            "/streams/publish/notes",
            json={"text": "hi"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == status
    assert SEEN_SCOPES == [["notes:write"]]


def test_security_dependencies_read_the_socket_headers() -> None:
    with TestClient(make_app()) as client:
        headers = {"Authorization": "Bearer good"}
        with client.websocket_connect("/streams/ws", headers=headers) as socket:
            socket.send_json({"type": "subscribe", "id": 1, "topic": "/notes"})
            assert socket.receive_json()["type"] == "ack"
            socket.send_json({"type": "publish", "id": 2, "topic": "/notes", "data": {"text": "x"}})
            replies = [socket.receive_json(), socket.receive_json()]
        with client.websocket_connect("/streams/ws") as socket:
            socket.send_json({"type": "publish", "id": 3, "topic": "/notes", "data": {"text": "y"}})
            refused = socket.receive_json()
    event = next(reply for reply in replies if reply["type"] == "event")
    assert event["data"] == {"text": "x", "author": "ann"}
    assert refused["type"] == "error" and refused["code"] == 401


def test_overrides_reach_a_routers_dependencies() -> None:
    from fastapi_streaming import StreamingRouter

    calls: list[str] = []

    def audit() -> None:
        calls.append("real")

    router = StreamingRouter(dependencies=[Depends(audit)])

    @router.publish("/notes")
    async def write(event: dict[str, str]) -> dict[str, str]:
        return event

    streaming = StreamingAPI()
    streaming.include_router(router)
    app = FastAPI()
    streaming.init_app(app)
    app.dependency_overrides[audit] = lambda: calls.append("override")
    with TestClient(app) as client:
        assert client.post("/streams/publish/notes", json={"a": "b"}).status_code == 202
    assert calls == ["override"]
