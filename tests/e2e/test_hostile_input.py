"""Hostile input a real adversary sent: each gets its documented answer, and the connection it
came on (with its subscriptions) and every other client carry on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from fastapi_streaming import StreamingAPI
from fastapi_streaming.errors import InvalidPayload
from tests.conftest import REDIS_URL
from tests.support.clients import post, receive_json, send_json, sse_stream, websocket
from tests.support.server import ServerProcess

#: Large enough that 100,000 levels of nesting fit under it.
LIMIT = 1_000_000
DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INT = "1" * 5_000


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {"BROKER_URL": "memory://", "MAX_MESSAGE_SIZE": str(LIMIT)}
    with ServerProcess("tests.apps.core_app:app", env=env) as running:
        yield running


async def still_subscribed(server: ServerProcess, ws: ClientConnection, room: int) -> None:
    """The multiplexed socket is open and its subscription to ``/rooms/{room}`` works."""
    answer = await post(server.url, f"/streams/publish/rooms/{room}", json={"text": "still"})
    assert answer.status_code == 202
    event = await receive_json(ws)
    assert (event["type"], event["data"]["text"]) == ("event", "still")


async def subscribed_socket(server: ServerProcess, ws: ClientConnection, room: int) -> None:
    await send_json(ws, {"type": "subscribe", "id": "keep", "topic": f"/rooms/{room}"})
    assert await receive_json(ws) == {"type": "ack", "id": "keep"}


def no_traceback(server: ServerProcess) -> None:
    output = server.output()
    assert "Traceback" not in output and "RecursionError" not in output, output[-3000:]


# -- deeply nested JSON ---------------------------------------------------------------------


async def test_deeply_nested_control_message_is_malformed_and_the_socket_survives(
    server: ServerProcess,
) -> None:
    async with websocket(server.ws_url + "/streams/ws", max_size=None) as ws:
        await subscribed_socket(server, ws, 11)
        await ws.send(DEEP)
        answer = await receive_json(ws)
        assert (answer["type"], answer["code"], answer["error"]) == ("error", 400, "malformed")
        assert "nested too deeply" in answer["detail"]
        nested_data = '{"type":"publish","id":2,"topic":"/audit","data":' + DEEP + "}"
        await ws.send(nested_data)
        answer = await receive_json(ws)
        assert (answer["type"], answer["code"]) == ("error", 400)
        await still_subscribed(server, ws, 11)
    no_traceback(server)


async def test_deeply_nested_frame_on_a_one_topic_socket_is_answered(
    server: ServerProcess,
) -> None:
    async with websocket(server.ws_url + "/streams/ws/rooms/12", max_size=None) as ws:
        await ws.send(DEEP)
        answer = await receive_json(ws)
        assert (answer["type"], answer["code"]) == ("error", 400)
        await send_json(ws, {"text": "fine now"})
        assert (await receive_json(ws))["text"] == "fine now"
    no_traceback(server)


async def test_deeply_nested_http_publish_body_is_400(server: ServerProcess) -> None:
    answer = await post(server.url, "/streams/publish/audit", content=DEEP.encode())
    assert answer.status_code == 400
    assert "not valid JSON" in answer.json()["detail"]


# -- integer parameters that int() refuses --------------------------------------------------


async def test_huge_integer_parameter_is_an_unknown_topic_over_http(server: ServerProcess) -> None:
    answer = await post(server.url, f"/streams/publish/rooms/{HUGE_INT}", json={"text": "x"})
    assert answer.status_code == 404
    assert "No topic at address" in answer.json()["detail"]
    async with httpx.AsyncClient(base_url=server.url) as http:
        one = await http.get(f"/streams/sse/rooms/{HUGE_INT}")
        many = await http.get("/streams/sse", params={"topic": ["/rooms/1", f"/rooms/{HUGE_INT}"]})
    assert (one.status_code, many.status_code) == (404, 404)
    no_traceback(server)


async def test_huge_integer_parameter_refuses_the_websocket_handshake(
    server: ServerProcess,
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with websocket(server.ws_url + f"/streams/ws/rooms/{HUGE_INT}"):
            pass
    assert refused.value.response.status_code == 404
    no_traceback(server)


@pytest.mark.parametrize("kind", ["subscribe", "publish"])
async def test_huge_integer_parameter_on_the_multiplexed_socket_is_an_error(
    server: ServerProcess, kind: str
) -> None:
    async with websocket(server.ws_url + "/streams/ws") as ws:
        await subscribed_socket(server, ws, 13)
        topic = f"/rooms/{HUGE_INT}"
        await send_json(ws, {"type": kind, "id": 5, "topic": topic, "data": {"text": "x"}})
        answer = await receive_json(ws)
        assert (answer["type"], answer["id"], answer["code"]) == ("error", 5, 404)
        assert answer["error"] == "unknown_topic"
        await ws.send('{"type": "subscribe", "id": ' + HUGE_INT + ', "topic": "/rooms/1"}')
        answer = await receive_json(ws)
        assert (answer["type"], answer["code"]) == ("error", 400)
        await still_subscribed(server, ws, 13)
    no_traceback(server)


# -- NaN and Infinity -----------------------------------------------------------------------

NON_STANDARD = ['{"a":NaN,"b":Infinity}', '{"a":-Infinity}', '{"a":1e400}']


@pytest.mark.parametrize("body", NON_STANDARD)
async def test_non_standard_numbers_are_422_over_http(server: ServerProcess, body: str) -> None:
    async with sse_stream(server.url, "/streams/sse/stocks/NAN") as sse:
        answer = await post(server.url, "/streams/publish/audit", content=body.encode())
        assert answer.status_code == 422
        assert answer.json()["detail"][0]["type"] == "non_standard_number"
        quote = await post(
            server.url, "/streams/publish/stocks/NAN", content=b'{"symbol":"NAN","price":NaN}'
        )
        assert quote.status_code == 422
        fine = await post(
            server.url, "/streams/publish/stocks/NAN", json={"symbol": "N", "price": 1}
        )
        assert fine.status_code == 202
        await sse.wait_for(1)
        assert sse.data() == [{"symbol": "N", "price": 1.0}], "only the valid event is relayed"


@pytest.mark.parametrize("body", NON_STANDARD)
async def test_non_standard_numbers_are_422_on_sockets(server: ServerProcess, body: str) -> None:
    async with websocket(server.ws_url + "/streams/ws/audit") as one:
        await one.send(body)
        answer = await receive_json(one)
        assert (answer["type"], answer["code"], answer["error"]) == (
            "error",
            422,
            "invalid_payload",
        )
    async with websocket(server.ws_url + "/streams/ws") as ws:
        await subscribed_socket(server, ws, 14)
        await ws.send('{"type":"publish","id":7,"topic":"/audit","data":' + body + "}")
        answer = await receive_json(ws)
        assert (answer["type"], answer["code"], answer["error"]) == (
            "error",
            422,
            "invalid_payload",
        )
        await still_subscribed(server, ws, 14)


async def test_server_side_emit_of_nan_fails_clearly() -> None:
    streaming = StreamingAPI(broker="memory://")

    @streaming.subscribe("/readings")
    async def readings(event: dict[str, Any]) -> dict[str, Any]:
        return event

    async with streaming.running():
        with pytest.raises(InvalidPayload) as refused:
            await streaming.emit("/readings", {"value": float("nan")})
        assert "NaN" in str(refused.value.detail)
        with pytest.raises(InvalidPayload):
            await streaming.emit("/readings", {"value": float("inf")})
        assert (await streaming.emit("/readings", {"value": 1.5})).id


@pytest.mark.redis
async def test_nan_written_into_the_broker_by_another_system_is_never_relayed(
    channel_prefix: str,
) -> None:
    from redis import asyncio as redis

    env = {"BROKER_URL": REDIS_URL, "CHANNEL_PREFIX": channel_prefix}
    with ServerProcess("tests.apps.core_app:app", env=env) as server:
        async with sse_stream(server.url, "/streams/sse/alerts") as sse:
            client = redis.Redis.from_url(REDIS_URL)
            try:
                for raw in ('{"level":NaN}', '{"level":Infinity}', '{"level":1}'):
                    await client.publish(channel_prefix + "alerts", raw)
            finally:
                await client.aclose()
            await sse.wait_for(1)
            await asyncio.sleep(0.5)  # room for anything else that would (wrongly) come
            assert sse.data() == [{"level": 1}]
            assert all("NaN" not in e.data and "Infinity" not in e.data for e in sse.events)
        assert "holds NaN or Infinity" in server.output()


async def test_a_failing_handler_is_answered_and_the_sockets_carry_on(
    server: ServerProcess,
) -> None:
    async with websocket(server.ws_url + "/streams/ws") as ws:
        await subscribed_socket(server, ws, 15)
        await send_json(ws, {"type": "publish", "id": 9, "topic": "/faulty", "data": {}})
        answer = await receive_json(ws)
        assert (answer["type"], answer["id"], answer["code"]) == ("error", 9, 500)
        assert answer["error"] == "internal_error"
        await still_subscribed(server, ws, 15)
    async with websocket(server.ws_url + "/streams/ws/faulty") as one:
        await one.send("{}")
        answer = await receive_json(one)
        assert (answer["type"], answer["code"]) == ("error", 500)
        await one.send("{}")
        assert (await receive_json(one))["code"] == 500, "the socket is still served"
    assert "a bug in the publish handler" in server.output(), "the bug is logged for its owner"
