"""The examples of docs/asyncapi.md."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from docs_src.asyncapi import app as generation
from fastapi_streaming import StreamingAPI, TopicNotFound
from fastapi_streaming.asyncapi import get_asyncapi
from tests.support.asyncapi_parser import parse_documents
from tests.support.clients import post, receive_json, send_json, sse_stream, websocket
from tests.support.server import ServerProcess

KEY = "a key for the tutorial's tokens, long enough"


async def test_the_document_describes_the_greenhouse() -> None:
    transport = httpx.ASGITransport(app=generation.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        document = (await client.get("/asyncapi.json")).json()
        page = await client.get("/asyncapi")
    assert document["info"]["contact"]["name"] == "Greenhouse team"
    assert document["servers"]["sse"]["host"] == "greenhouse.example.com"
    assert document["servers"]["sse"]["protocol"] == "https"
    channel = document["channels"]["rooms_room_readings"]
    assert channel["address"] == "/rooms/{room}/readings"
    assert channel["messages"]["Reading"]["examples"] == [
        {"payload": {"sensor": "north", "celsius": 21.5}}
    ]
    assert document["operations"]["publish_rooms_room_readings"]["x-scopes"] == ["readings:write"]
    assert "AsyncApiStandalone.render" in page.text


@pytest.mark.node
def test_the_partner_document_round_trips_through_the_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JWT_KEY", KEY)
    from docs_src.asyncapi import from_document

    results = parse_documents(
        {
            version: get_asyncapi(from_document.streaming, version=version)
            for version in ("3.0.0", "2.6.0")
        }
    )
    assert {name: found["errors"] for name, found in results.items()} == {
        "3.0.0": [],
        "2.6.0": [],
    }


def token(scopes: str) -> str:
    claims = {"sub": "partner", "scope": scopes, "exp": int(time.time()) + 600}
    return jwt.encode(claims, KEY, algorithm="HS256")


async def test_an_api_from_a_document_validates_and_handles_events() -> None:
    partner = {"Authorization": f"Bearer {token('trades:write quotes:read')}"}
    feed = {"Authorization": f"Bearer {token('quotes:write')}"}
    with ServerProcess("docs_src.asyncapi.from_document:app", env={"JWT_KEY": KEY}) as server:
        no_scope = await post(
            server.url, "/streams/publish/quotes/ACME", json={"symbol": "ACME", "price": 1.0}
        )
        wrong_scope = await post(
            server.url,
            "/streams/publish/quotes/ACME",
            json={"symbol": "ACME", "price": 1.0},
            headers=partner,
        )
        access_token = token("quotes:read")
        async with sse_stream(
            server.url, "/streams/sse/quotes/ACME", access_token=access_token
        ) as stream:
            invalid_trade = await post(
                server.url,
                "/streams/publish/trades",
                json={"symbol": "ACME", "quantity": 0},
                headers=partner,
            )
            trade = await post(
                server.url,
                "/streams/publish/trades",
                json={"symbol": "ACME", "quantity": 5},
                headers=partner,
            )
            invalid_quote = await post(
                server.url,
                "/streams/publish/quotes/ACME",
                json={"symbol": "ACME", "price": 0},
                headers=feed,
            )
            for symbol, price in (("OTHER", 1.0), ("ACME", 12.3456)):
                answer = await post(
                    server.url,
                    "/streams/publish/quotes/ACME",
                    json={"symbol": symbol, "price": price},
                    headers=feed,
                )
                assert answer.status_code == 202
            await stream.wait_for(1)
    assert no_scope.status_code == 401
    assert wrong_scope.status_code == 403
    assert trade.status_code == 202
    assert invalid_trade.status_code == 422
    assert (
        "0 is less than the minimum of 1 (at /quantity)" in invalid_trade.json()["detail"][0]["msg"]
    )
    assert invalid_quote.status_code == 422
    assert stream.data() == [{"symbol": "ACME", "price": 12.35}]


async def test_a_request_gets_its_reply_correlated_by_id_and_at_its_reply_address() -> None:
    with ServerProcess("docs_src.asyncapi.request_reply:app") as server:
        async with websocket(f"{server.ws_url}/streams/ws") as ws:
            await send_json(ws, {"type": "subscribe", "id": "s", "topic": "/results/ada"})
            assert await receive_json(ws) == {"type": "ack", "id": "s"}
            request = {"numbers": [4, 3], "reply_to": "/results/ada"}
            await send_json(ws, {"type": "publish", "id": "r1", "topic": "/sum", "data": request})
            received = [await receive_json(ws) for _ in range(3)]
    replies = [message for message in received if message["type"] == "reply"]
    assert replies == [{"type": "reply", "id": "r1", "topic": "/sum", "data": {"result": 7.0}}]
    acks = [message for message in received if message["type"] == "ack"]
    assert acks[0]["id"] == "r1" and received.index(replies[0]) < received.index(acks[0])
    [event] = [message for message in received if message["type"] == "event"]
    assert event["topic"] == "/results/ada" and event["data"] == {"result": 7.0}


async def test_a_request_without_its_reply_address_is_refused_before_it_is_published() -> None:
    with ServerProcess("docs_src.asyncapi.request_reply:app") as server:
        async with websocket(f"{server.ws_url}/streams/ws") as ws:
            data = {"numbers": [1], "reply_to": ""}
            await send_json(ws, {"type": "publish", "id": "r2", "topic": "/sum", "data": data})
            error = await receive_json(ws)
    assert error["type"] == "error" and error["id"] == "r2" and error["code"] == 400
    assert "reply_to" in error["detail"]


@pytest.mark.node
def test_the_reply_is_documented_and_the_documents_are_valid() -> None:
    from docs_src.asyncapi import request_reply

    documents = {
        version: get_asyncapi(request_reply.streaming, version=version)
        for version in ("3.0.0", "3.1.0", "2.6.0")
    }
    operation = documents["3.0.0"]["operations"]["publish_sum"]
    assert operation["reply"] == {
        "channel": {"$ref": "#/channels/sum"},
        "messages": [{"$ref": "#/channels/sum/messages/SumResult"}],
        "address": {"location": "$message.payload#/reply_to"},
    }
    assert operation["messages"] == [{"$ref": "#/channels/sum/messages/Sum"}]
    results = parse_documents(documents)
    assert {name: found["errors"] for name, found in results.items()} == {
        version: [] for version in documents
    }


async def test_a_reply_address_that_is_no_topic_is_refused_before_anything_is_published() -> None:
    from docs_src.asyncapi import request_reply

    async with request_reply.streaming.running() as runtime:
        with pytest.raises(TopicNotFound):
            await runtime.request("/sum", data={"numbers": [1], "reply_to": "/nowhere/at/all"})


async def test_a_request_that_names_no_reply_address_gets_its_reply_only() -> None:
    from docs_src.asyncapi import request_reply

    streaming = StreamingAPI()

    @streaming.publish("/sum", reply=request_reply.SumResult, reply_address="$message.header#/to")
    async def add(event: dict[str, Any]) -> request_reply.SumResult:
        return request_reply.SumResult(result=sum(event["numbers"]))

    async with streaming.running() as runtime:
        event, reply = await runtime.request("/sum", data={"numbers": [1, 2]})
    assert event is not None and reply == b'{"result":3.0}'
