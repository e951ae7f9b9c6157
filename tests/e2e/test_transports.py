"""Every transport against a real server, on the in-process broker and on the real Redis."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.support.clients import post, receive_json, send_json, sse_stream, websocket
from tests.support.server import ServerProcess


async def test_sse_one_topic_gets_each_published_event_with_its_id(server: ServerProcess) -> None:
    async with sse_stream(server.url, "/streams/sse/stocks/AAPL") as stream:
        assert stream.response is not None
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        ids = []
        for price in (1.5, 2.5, 3.5):
            answer = await post(
                server.url, "/streams/publish/stocks/AAPL", json={"symbol": "AAPL", "price": price}
            )
            assert answer.status_code == 202
            ids.append(answer.json()["id"])
        events = await stream.wait_for(3)
    assert [event.id for event in events] == ids
    assert [event.event for event in events] == ["message"] * 3
    assert stream.data() == [{"symbol": "AAPL", "price": p} for p in (1.5, 2.5, 3.5)]


async def test_sse_many_topics_names_each_event_after_its_topic(server: ServerProcess) -> None:
    async with sse_stream(server.url, "/streams/sse", topic=["/stocks/AAPL", "/rooms/7"]) as stream:
        await post(server.url, "/streams/publish/rooms/7", json={"text": "hi"})
        await post(server.url, "/streams/publish/stocks/AAPL", json={"symbol": "AAPL", "price": 1})
        events = await stream.wait_for(2)
    assert [event.event for event in events] == ["/rooms/7", "/stocks/AAPL"]
    assert stream.data()[0] == {"text": "hi", "author": "anonymous@room-7"}


async def test_websocket_one_topic_receives_and_publishes(server: ServerProcess) -> None:
    async with (
        websocket(server.ws_url + "/streams/ws/rooms/42") as alice,
        websocket(server.ws_url + "/streams/ws/rooms/42") as bob,
    ):
        await send_json(alice, {"text": "hello", "author": "alice"})
        expected = {"text": "hello", "author": "alice@room-42"}
        assert await receive_json(alice) == expected
        assert await receive_json(bob) == expected


async def test_multiplexed_socket_subscribes_publishes_and_unsubscribes(
    server: ServerProcess,
) -> None:
    async with websocket(server.ws_url + "/streams/ws") as ws:
        await send_json(ws, {"type": "subscribe", "id": "s1", "topic": "/stocks/MSFT"})
        assert await receive_json(ws) == {"type": "ack", "id": "s1"}
        await send_json(ws, {"type": "subscribe", "id": "s2", "topic": "/rooms/1"})
        assert await receive_json(ws) == {"type": "ack", "id": "s2"}

        data = {"symbol": "MSFT", "price": 420.5}
        await send_json(ws, {"type": "publish", "id": "p1", "topic": "/stocks/MSFT", "data": data})
        first, second = await receive_json(ws), await receive_json(ws)
        ack, event = (first, second) if first["type"] == "ack" else (second, first)
        assert ack["id"] == "p1" and ack["event_id"] == event["id"]
        assert event["type"] == "event" and event["topic"] == "/stocks/MSFT"
        assert event["data"] == data and event["time"].endswith("Z")

        await send_json(ws, {"type": "unsubscribe", "id": "u1", "topic": "/stocks/MSFT"})
        assert await receive_json(ws) == {"type": "ack", "id": "u1"}
        await post(server.url, "/streams/publish/stocks/MSFT", json=data)
        await post(server.url, "/streams/publish/rooms/1", json={"text": "still here"})
        event = await receive_json(ws)
        assert event["topic"] == "/rooms/1", "unsubscribed topic must not arrive"


async def test_acks_follow_the_order_of_the_requests(server: ServerProcess) -> None:
    """1,000 subscribes sent at once (and an unsubscribe and a publish among them) are answered
    in the order they were sent, whatever the bursts the server reads them in."""
    count = 1000
    requests = [
        json.dumps({"type": "subscribe", "id": n, "topic": f"/stocks/S{n}"}) for n in range(count)
    ]
    requests.insert(500, json.dumps({"type": "unsubscribe", "id": "u", "topic": "/stocks/S3"}))
    publish = {"type": "publish", "id": "p", "topic": "/rooms/5", "data": {"text": "between"}}
    requests.insert(700, json.dumps(publish))
    async with websocket(server.ws_url + "/streams/ws") as ws:
        await asyncio.gather(*(ws.send(request) for request in requests))
        answers = [await receive_json(ws, timeout=60) for _ in requests]
    assert [answer["type"] for answer in answers] == ["ack"] * len(requests)
    expected = [json.loads(request)["id"] for request in requests]
    assert [answer["id"] for answer in answers] == expected


async def test_http_publish_answers_202_and_handler_can_drop(server: ServerProcess) -> None:
    kept = await post(server.url, "/streams/publish/audit", json={"action": "login"})
    assert kept.status_code == 202
    assert kept.json()["published"] is True and len(kept.json()["id"]) == 36
    dropped = await post(server.url, "/streams/publish/audit", json={"drop": True})
    assert dropped.status_code == 202
    assert dropped.json() == {"id": None, "topic": "/audit", "published": False}


async def test_subscribe_handler_runs_once_per_event_whatever_the_clients(
    server: ServerProcess,
) -> None:
    async with (
        sse_stream(server.url, "/streams/sse/stocks/IBM") as one,
        sse_stream(server.url, "/streams/sse/stocks/IBM") as two,
        websocket(server.ws_url + "/streams/ws/stocks/IBM") as three,
        websocket(server.ws_url + "/streams/ws") as four,
    ):
        await send_json(four, {"type": "subscribe", "id": 1, "topic": "/stocks/IBM"})
        await receive_json(four)
        for price in range(1, 6):
            await post(
                server.url, "/streams/publish/stocks/IBM", json={"symbol": "IBM", "price": price}
            )
        await one.wait_for(5)
        await two.wait_for(5)
        for _ in range(5):
            await receive_json(three)
            await receive_json(four)
        async with httpx.AsyncClient(base_url=server.url) as http:
            stats = (await http.get("/test/stats")).json()
    assert stats["calls"]["quotes"] == 5
    assert stats["fanout"]["streams"]["/stocks/IBM"]["clients"] == 4


async def test_server_side_emit_reaches_subscribers(server: ServerProcess) -> None:
    async with sse_stream(server.url, "/streams/sse/alerts") as stream:
        answer = await post(
            server.url, "/test/emit", params={"address": "/alerts"}, json={"level": "high"}
        )
        events = await stream.wait_for(1)
    assert events[0].id == answer.json()["id"]
    assert stream.data() == [{"level": "high"}]


async def test_broker_subscription_is_released_with_the_last_client(
    server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        async with sse_stream(server.url, "/streams/sse/stocks/ORCL"):
            streams = (await http.get("/test/stats")).json()["fanout"]["streams"]
            assert "/stocks/ORCL" in streams
        for _ in range(50):
            streams = (await http.get("/test/stats")).json()["fanout"]["streams"]
            if "/stocks/ORCL" not in streams:
                break
            await asyncio.sleep(0.05)
    assert "/stocks/ORCL" not in streams
