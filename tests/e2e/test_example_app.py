"""The example app of the README, as a user runs it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import httpx
import pytest

from example_app.feed import lease_url
from tests.conftest import REDIS_URL
from tests.support.auth import ALL_SCOPES, Account, claims
from tests.support.clients import receive_json, send_json, sse_stream, websocket
from tests.support.redis_control import private_redis
from tests.support.server import ServerProcess


async def test_page_quotes_and_orders_work_on_the_embedded_default(tmp_path: Path) -> None:
    env = {
        "FEED_INTERVAL": "0.05",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/users.db",
        "WEBSUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/websub.db",
    }
    with ServerProcess("example_app.main:app", env=env) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            page = await http.get("/")
            anonymous = await http.get("/streams/sse/stocks/AAPL")
        assert page.status_code == 200
        assert "new EventSource" in page.text and "new WebSocket" in page.text
        assert "/auth/jwt/login" in page.text and "access_token=" in page.text
        assert anonymous.status_code == 401

        # The quick start: a newly registered user gets every scope of the example.
        account = Account(server.url)
        token = account.login()
        assert claims(token)["scope"].split() == sorted(ALL_SCOPES)

        async with sse_stream(
            server.url,
            "/streams/sse",
            topic=["/stocks/AAPL", "/stocks/MSFT"],
            access_token=token,
        ) as quotes:
            events = await quotes.wait_for(4)
        assert {event.event for event in events} == {"/stocks/AAPL", "/stocks/MSFT"}
        assert all(json.loads(event.data)["price"] > 0 for event in events)

        # The page's chart: one-minute candles derived from the quotes, updated every second.
        assert "/candles/1m" in page.text and 'id="chart"' in page.text
        async with sse_stream(
            server.url, "/streams/sse/stocks/AAPL/candles/1m", access_token=token
        ) as candles:
            (update, *_) = await candles.wait_for(1, timeout=15)
        candle = json.loads(update.data)
        assert candle["symbol"] == "AAPL" and isinstance(candle["final"], bool)
        assert candle["low"] <= min(candle["open"], candle["close"]) <= candle["high"]

        async with websocket(f"{server.ws_url}/streams/ws?access_token={token}") as ws:
            await send_json(ws, {"type": "subscribe", "id": 1, "topic": "/orders"})
            assert await receive_json(ws) == {"type": "ack", "id": 1}
            order = {"symbol": "AAPL", "side": "buy", "quantity": 10, "limit_price": None}
            await send_json(ws, {"type": "publish", "id": 2, "topic": "/orders", "data": order})
            replies = [await receive_json(ws), await receive_json(ws)]
            ack = next(r for r in replies if r["type"] == "ack")
            event = next(r for r in replies if r["type"] == "event")
            assert ack["event_id"] == event["id"]
            assert event["data"]["status"] == "accepted" and event["data"]["symbol"] == "AAPL"
            assert len(event["data"]["id"]) == 12
            assert event["data"]["placed_by"] == account.email

            bad = {"symbol": "AAPL", "side": "hold", "quantity": 0}
            await send_json(ws, {"type": "publish", "id": 3, "topic": "/orders", "data": bad})
            error = await receive_json(ws)
            assert (error["type"], error["id"], error["code"]) == ("error", 3, 422)
            assert {tuple(e["loc"]) for e in error["detail"]} == {
                ("body", "side"),
                ("body", "quantity"),
            }


@pytest.mark.redis
async def test_two_workers_on_redis_emit_each_quote_once(tmp_path: Path) -> None:
    interval = 0.2
    env = {
        "BROKER_URL": REDIS_URL,
        "FEED_INTERVAL": str(interval),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/users.db",
        "WEBSUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/websub.db",
    }
    with ServerProcess("example_app.main:app", env=env, workers=2) as server:
        token = Account(server.url).login(("stocks:read",))
        async with sse_stream(server.url, "/streams/sse/stocks/GOOG", access_token=token) as quotes:
            await asyncio.sleep(3)
            events = list(quotes.events)
    times = [json.loads(event.data)["time"] for event in events]
    assert len(times) == len(set(times))
    # One feed emits about 3 / 0.2 = 15 quotes in 3 s; two feeds would emit about 30.
    assert 8 <= len(events) <= 20, len(events)


def test_the_feed_finds_its_lease_on_any_redis_scheme() -> None:
    assert lease_url("redis://:pw@h:1/2") == "redis://:pw@h:1/2"
    assert lease_url("rediss://h:6380") == "rediss://h:6380"
    assert lease_url("redis-stream://:pw@h:1/2?maxlen=500") == "redis://:pw@h:1/2"
    assert lease_url("memory://") is None
    assert lease_url("postgresql://db/app") is None
    assert lease_url("kafka://h:9092", "redis://lease:6379") == "redis://lease:6379"


@pytest.mark.redis
@pytest.mark.parametrize("scheme", ["redis", "redis-stream"])
async def test_the_feed_survives_a_broker_outage(scheme: str, tmp_path: Path) -> None:
    """On redis-stream:// the feed used to never start; on both it stopped for good at the
    first broker error. It must start, pause through the outage and carry on after it."""
    with private_redis(scheme) as redis:
        env = {
            "BROKER_URL": redis.url,
            "FEED_INTERVAL": "0.1",
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/users.db",
        }
        with ServerProcess("example_app.main:app", env=env) as server:
            token = Account(server.url).login(("stocks:read",))
            path = "/streams/sse/stocks/AAPL"
            async with sse_stream(server.url, path, access_token=token) as quotes:
                await quotes.wait_for(3)

            await redis.stop()
            for _ in range(100):  # bounded: until the feed noticed
                if "The price feed paused" in server.output():
                    break
                await asyncio.sleep(0.1)
            assert "The price feed paused" in server.output()
            await redis.start()

            fresh: list[dict[str, object]] = []
            for _ in range(30):  # a new stream, once the server is back on the broker
                async with sse_stream(server.url, path, access_token=token) as quotes:
                    with contextlib.suppress(TimeoutError):
                        await quotes.wait_for(3, timeout=2)
                    fresh = quotes.data()
                if len(fresh) >= 3:
                    break
            assert len(fresh) >= 3, server.output()[-3000:]
            assert "The price feed is running again." in server.output()
