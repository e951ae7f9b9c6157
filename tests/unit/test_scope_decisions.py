"""Where several topics meet one token: a multi-topic stream is one request, refused whole; the
multiplexed socket decides each subscribe and publish message on its own (docs/security.md)."""

from __future__ import annotations

import inspect
import re
import time
from pathlib import Path

import jwt
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_streaming import StreamingAPI
from fastapi_streaming.security import JWTAuthorizer
from fastapi_streaming.testing import stream_events

SECRET = "a-test-secret-of-32-bytes-at-least!!"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def make_app() -> FastAPI:
    streaming = StreamingAPI(authorizer=JWTAuthorizer(key=SECRET))
    for name in ("a", "b"):

        @streaming.subscribe(f"/{name}", scopes=[f"{name}:read"])
        async def read(event: int) -> int:
            return event

        @streaming.publish(f"/{name}", scopes=[f"{name}:write"])
        async def write(event: int) -> int:
            return event

    app = FastAPI()
    streaming.init_app(app)
    return app


def token(*scopes: str) -> str:
    claims = {"sub": "tester", "scope": " ".join(scopes), "exp": int(time.time()) + 600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_the_multiplexed_socket_decides_each_message_on_its_own() -> None:
    headers = {"Authorization": f"Bearer {token('a:read', 'a:write')}"}
    with TestClient(make_app()) as client:
        with client.websocket_connect("/streams/ws", headers=headers) as socket:
            socket.send_json({"type": "subscribe", "id": 1, "topic": "/b"})
            refused = socket.receive_json()
            socket.send_json({"type": "subscribe", "id": 2, "topic": "/a"})
            assert socket.receive_json() == {"type": "ack", "id": 2}
            socket.send_json({"type": "publish", "id": 3, "topic": "/b", "data": 1})
            refused_publish = socket.receive_json()
            socket.send_json({"type": "publish", "id": 4, "topic": "/a", "data": 7})
            replies = [socket.receive_json(), socket.receive_json()]
    assert (refused["id"], refused["code"], refused["error"]) == (1, 403, "insufficient_scope")
    assert "b:read" in refused["detail"]
    assert (refused_publish["id"], refused_publish["code"]) == (3, 403)
    assert {reply["type"] for reply in replies} == {"ack", "event"}


def test_a_multi_topic_stream_needs_every_scope_and_is_refused_whole() -> None:
    with TestClient(make_app()) as client:
        url = "/streams/sse?topic=/a&topic=/b"
        partial = {"Authorization": f"Bearer {token('a:read')}"}
        with stream_events(client, url, headers=partial) as events:
            assert events.status_code == 403
            assert "b:read" in events.read().decode()
        full = {"Authorization": f"Bearer {token('a:read', 'b:read')}"}
        with stream_events(client, url, headers=full) as events:
            assert events.status_code == 200


def test_the_jwt_options_table_lists_every_option_with_its_default() -> None:
    page = (DOCS / "security.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", page, re.MULTILINE))
    parameters = inspect.signature(JWTAuthorizer).parameters
    assert set(rows) == set(parameters)
    for name, parameter in parameters.items():
        assert rows[name] == repr(parameter.default).replace("'", '"'), name
