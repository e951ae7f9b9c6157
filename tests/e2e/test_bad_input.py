"""Every kind of bad input gets its defined answer, and the clients beside it see nothing of it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.clients import (
    SSEClient,
    post,
    receive_json,
    send_json,
    sse_stream,
    websocket,
)
from tests.support.server import ServerProcess

LIMIT = 4096


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {"BROKER_URL": "memory://", "MAX_MESSAGE_SIZE": str(LIMIT)}
    with ServerProcess("tests.apps.core_app:app", env=env) as running:
        yield running


@asynccontextmanager
async def neighbours(server: ServerProcess) -> AsyncIterator[tuple[SSEClient, Any]]:
    """An SSE and a WebSocket client on /rooms/1, checked after the offence."""
    async with (
        sse_stream(server.url, "/streams/sse/rooms/1") as sse,
        websocket(server.ws_url + "/streams/ws/rooms/1") as ws,
    ):
        yield sse, ws
        answer = await post(server.url, "/streams/publish/rooms/1", json={"text": "after"})
        assert answer.status_code == 202
        await sse.wait_for(1)
        assert sse.data() == [{"text": "after", "author": "anonymous@room-1"}]
        assert (await receive_json(ws))["text"] == "after"


HTTP_CASES = [
    ("unknown topic", "/streams/publish/nowhere", {"json": {}}, 404, "No topic at address"),
    ("parameter of the wrong type", "/streams/publish/rooms/abc", {"json": {}}, 404, "rooms/abc"),
    ("subscribe-only topic", "/streams/publish/alerts", {"json": {}}, 405, "does not accept"),
    ("malformed JSON", "/streams/publish/rooms/1", {"content": b"{oops"}, 400, "not valid JSON"),
    (
        "oversized",
        "/streams/publish/rooms/1",
        {"json": {"text": "x" * LIMIT}},
        413,
        f"limit of {LIMIT} bytes",
    ),
]


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "detail"),
    [case[1:] for case in HTTP_CASES],
    ids=[case[0] for case in HTTP_CASES],
)
async def test_http_publish_errors(
    server: ServerProcess, path: str, kwargs: dict[str, Any], status: int, detail: str
) -> None:
    async with neighbours(server):
        answer = await post(server.url, path, **kwargs)
        assert answer.status_code == status
        assert detail in answer.json()["detail"]


async def test_http_publish_invalid_payload_lists_pydantic_errors(server: ServerProcess) -> None:
    async with neighbours(server):
        answer = await post(server.url, "/streams/publish/stocks/AAPL", json={"price": -1})
    assert answer.status_code == 422
    errors = answer.json()["detail"]
    assert {(tuple(e["loc"]), e["type"]) for e in errors} == {
        (("body", "symbol"), "missing"),
        (("body", "price"), "greater_than"),
    }


def test_publish_to_subscribe_only_topic_names_the_allowed_method(server: ServerProcess) -> None:
    import httpx

    answer = httpx.post(server.url + "/streams/publish/alerts", json={})
    assert answer.status_code == 405
    assert "Allow" in answer.headers


SSE_CASES = [
    ("unknown topic", "/streams/sse/nowhere", {}, 404),
    ("publish-only topic", "/streams/sse/audit", {}, 405),
    ("no topic named", "/streams/sse", {}, 400),
    ("one unknown among many", "/streams/sse", {"topic": ["/rooms/1", "/nowhere"]}, 404),
]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [case[1:] for case in SSE_CASES],
    ids=[case[0] for case in SSE_CASES],
)
async def test_sse_errors(
    server: ServerProcess, path: str, params: dict[str, Any], status: int
) -> None:
    import httpx

    async with neighbours(server):
        async with httpx.AsyncClient(base_url=server.url) as http:
            answer = await http.get(path, params=params)
        assert answer.status_code == status
        assert answer.json()["detail"]


async def test_websocket_to_unknown_topic_is_refused_before_accept(server: ServerProcess) -> None:
    async with neighbours(server):
        with pytest.raises(InvalidStatus) as refused:
            async with websocket(server.ws_url + "/streams/ws/nowhere"):
                pass
        assert refused.value.response.status_code == 404
        assert b"No topic at address" in refused.value.response.body


ONE_TOPIC_CASES = [
    ("subscribe-only topic", "/streams/ws/alerts", "{}", 405, "mode_not_allowed"),
    ("invalid payload", "/streams/ws/rooms/2", '{"text": 5}', 422, "invalid_payload"),
    ("malformed JSON", "/streams/ws/rooms/2", "{oops", 400, "malformed"),
]


@pytest.mark.parametrize(
    ("path", "sent", "code", "error"),
    [case[1:] for case in ONE_TOPIC_CASES],
    ids=[case[0] for case in ONE_TOPIC_CASES],
)
async def test_one_topic_socket_errors_keep_the_socket_open(
    server: ServerProcess, path: str, sent: str, code: int, error: str
) -> None:
    async with neighbours(server), websocket(server.ws_url + path) as ws:
        await ws.send(sent)
        answer = await receive_json(ws)
        assert answer["type"] == "error"
        assert (answer["code"], answer["error"]) == (code, error)
        if path.endswith("rooms/2"):
            await send_json(ws, {"text": "fine now"})
            assert (await receive_json(ws))["text"] == "fine now"


MUX_CASES = [
    ("not JSON", "{oops", 400, "malformed"),
    ("not an object", "[1, 2]", 400, "malformed"),
    ("unknown type", '{"type": "dance", "id": 1, "topic": "/rooms/1"}', 400, "malformed"),
    ("missing topic", '{"type": "subscribe", "id": 1}', 400, "malformed"),
    ("unknown topic", '{"type": "subscribe", "id": 1, "topic": "/nowhere"}', 404, "unknown_topic"),
    (
        "subscribe to publish-only",
        '{"type": "subscribe", "id": 1, "topic": "/audit"}',
        405,
        "mode_not_allowed",
    ),
    (
        "publish to subscribe-only",
        '{"type": "publish", "id": 1, "topic": "/alerts", "data": {}}',
        405,
        "mode_not_allowed",
    ),
    (
        "invalid payload",
        '{"type": "publish", "id": 1, "topic": "/rooms/3", "data": {"text": []}}',
        422,
        "invalid_payload",
    ),
]


@pytest.mark.parametrize(
    ("sent", "code", "error"),
    [case[1:] for case in MUX_CASES],
    ids=[case[0] for case in MUX_CASES],
)
async def test_multiplexed_socket_errors_keep_its_subscriptions(
    server: ServerProcess, sent: str, code: int, error: str
) -> None:
    async with neighbours(server), websocket(server.ws_url + "/streams/ws") as ws:
        await send_json(ws, {"type": "subscribe", "id": "keep", "topic": "/rooms/9"})
        assert (await receive_json(ws))["type"] == "ack"
        await ws.send(sent)
        answer = await receive_json(ws)
        assert answer["type"] == "error"
        assert (answer["code"], answer["error"]) == (code, error)
        if '"id": 1' in sent:
            assert answer["id"] == 1, "errors answer the request they are about"
        await post(server.url, "/streams/publish/rooms/9", json={"text": "still subscribed"})
        event = await receive_json(ws)
        assert (event["type"], event["data"]["text"]) == ("event", "still subscribed")


@pytest.mark.parametrize("path", ["/streams/ws/rooms/4", "/streams/ws"])
async def test_oversized_socket_message_closes_with_1009(server: ServerProcess, path: str) -> None:
    async with neighbours(server), websocket(server.ws_url + path) as ws:
        await ws.send(json.dumps({"text": "x" * LIMIT}))
        with pytest.raises(ConnectionClosed) as closed:
            await receive_json(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        assert str(LIMIT) in closed.value.rcvd.reason
