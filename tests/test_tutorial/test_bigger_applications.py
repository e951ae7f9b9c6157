"""The app of docs/bigger-applications.md: topics on routers, included into the API."""

from __future__ import annotations

import time

import httpx
import jwt

from docs_src.bigger_applications.main import streaming
from fastapi_streaming.asyncapi import get_asyncapi
from tests.support.clients import post, sse_stream
from tests.support.server import ServerProcess

KEY = "a test key that is long enough for HS256"


def token(scope: str) -> str:
    claims = {"sub": "trader", "scope": scope, "exp": int(time.time()) + 600}
    return jwt.encode(claims, KEY, algorithm="HS256")


def test_the_routers_topics_have_their_prefixes_scopes_and_tags() -> None:
    operations = {
        (topic.address, operation.mode.value): operation
        for topic in streaming.topics
        for operation in (topic.subscribe, topic.publish)
        if operation is not None
    }
    assert sorted(operations) == [
        ("/stocks/{symbol}", "publish"),
        ("/stocks/{symbol}", "subscribe"),
        ("/v1/orders", "publish"),
        ("/v1/orders", "subscribe"),
        ("/v1/orders/legacy", "subscribe"),
    ]
    assert operations[("/v1/orders", "subscribe")].scopes == ("orders",)
    assert operations[("/stocks/{symbol}", "publish")].scopes == ("quotes:write",)
    assert operations[("/stocks/{symbol}", "subscribe")].tags == ("market data",)
    document = get_asyncapi(streaming)
    assert document["operations"]["subscribe_v1_orders_legacy"]["x-deprecated"] is True
    assert document["operations"]["publish_v1_orders"]["tags"] == [{"name": "orders"}]


async def test_orders_need_the_routers_scope_over_real_http() -> None:
    with ServerProcess("docs_src.bigger_applications.main:app", env={"JWT_KEY": KEY}) as server:
        order = {"symbol": "ACME", "quantity": 3}
        refused = await post(server.url, "/streams/publish/v1/orders", json=order)
        assert refused.status_code == 401
        wrong_scope = await post(
            server.url,
            "/streams/publish/v1/orders",
            json=order,
            headers={"Authorization": f"Bearer {token('quotes:write')}"},
        )
        assert wrong_scope.status_code == 403
        async with sse_stream(
            server.url, "/streams/sse/v1/orders", access_token=token("orders")
        ) as stream:
            answer = await post(
                server.url,
                "/streams/publish/v1/orders",
                json=order,
                headers={"Authorization": f"Bearer {token('orders')}"},
            )
            assert answer.status_code == 202
            await stream.wait_for(1)
        assert stream.data() == [order]
        async with httpx.AsyncClient(base_url=server.url) as http:
            document = (await http.get("/asyncapi.json")).json()
        assert "v1_orders_legacy" in document["channels"]
