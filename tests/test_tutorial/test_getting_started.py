"""The code of docs/getting-started.md, run against a real server."""

from __future__ import annotations

import asyncio

from docs_src.getting_started import client
from tests.support.clients import post
from tests.support.server import ServerProcess


async def test_the_client_follows_quotes_published_over_http() -> None:
    with ServerProcess("docs_src.getting_started.app:app") as server:
        client.BASE_URL = server.url
        follower = asyncio.create_task(client.follow("AAPL", 2))
        await asyncio.sleep(0.5)  # let it subscribe
        for price in (187.12, 187.5):
            answer = await post(
                server.url, "/streams/publish/stocks/AAPL", json={"symbol": "AAPL", "price": price}
            )
            assert answer.status_code == 202
        received = await asyncio.wait_for(follower, 10)
    assert received == ['{"symbol":"AAPL","price":187.12}', '{"symbol":"AAPL","price":187.5}']


async def test_invalid_quote_gets_422() -> None:
    with ServerProcess("docs_src.getting_started.app:app") as server:
        answer = await post(server.url, "/streams/publish/stocks/AAPL", json={"symbol": "AAPL"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "price"]
