"""The code of docs/limits.md: docs_src/limits/app.py over a real uvicorn server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from tests.support.clients import sse_stream
from tests.support.server import ServerProcess

SECRET = "a-secret-of-at-least-thirty-two-bytes-for-hs256"


def token(sub: str) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 300}, SECRET, algorithm="HS256")


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    with ServerProcess("docs_src.limits.app:app", env={"JWT_SECRET": SECRET}) as running:
        yield running


async def test_the_sixth_publish_within_a_minute_gets_429(server: ServerProcess) -> None:
    alice = {"Authorization": f"Bearer {token('alice')}"}
    async with (
        sse_stream(server.url, "/streams/sse/ticks", access_token=token("watcher")) as ticks,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        answers = [
            await http.post("/streams/publish/ticks", json={"price": n}, headers=alice)
            for n in range(6)
        ]
        bob = await http.post(
            "/streams/publish/ticks",
            json={"price": 1},
            headers={"Authorization": f"Bearer {token('bob')}"},
        )
        await ticks.wait_for(6)
        metrics = await http.get("/metrics")
    assert [answer.status_code for answer in answers] == [202] * 5 + [429]
    sixth = answers[5]
    assert 1 <= int(sixth.headers["Retry-After"]) <= 60
    assert sixth.headers["RateLimit-Policy"] == '"basic-publish_rate";q=5;w=60'
    assert sixth.headers["RateLimit"].startswith('"basic-publish_rate";r=0;t=')
    assert bob.status_code == 202  # each principal (the token's sub) has its own 5
    assert ticks.data() == [{"price": n} for n in range(5)] + [{"price": 1}]
    assert 'streaming_events_published_total{topic="/ticks"} 6.0' in metrics.text


def plan_token(sub: str, **claims: str) -> str:
    payload = {"sub": sub, "exp": int(time.time()) + 300, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


async def test_plans_by_claim_router_and_function() -> None:
    with ServerProcess("docs_src.limits.plans:app", env={"JWT_SECRET": SECRET}) as server:
        free, gold = plan_token("fay"), plan_token("gil", plan="gold")
        async with httpx.AsyncClient(base_url=server.url) as http:
            # /orders: the function gives clients outside 10.0.0.0/8 ten publishes a minute.
            orders = [
                (
                    await http.post(
                        "/streams/publish/orders",
                        json={"n": n},
                        headers={"Authorization": f"Bearer {gold}"},
                    )
                ).status_code
                for n in range(11)
            ]
            async with (
                sse_stream(server.url, "/streams/sse/stocks/A", access_token=free),
                sse_stream(server.url, "/streams/sse/stocks/B", access_token=free),
                sse_stream(server.url, "/streams/sse/stocks/C", access_token=gold) as gold_one,
                sse_stream(server.url, "/streams/sse/stocks/D", access_token=gold) as gold_two,
                sse_stream(server.url, "/streams/sse/stocks/E", access_token=gold) as gold_three,
            ):
                third_free = await http.get("/streams/sse/stocks/F", params={"access_token": free})
                gold_streams = [s.response.status_code for s in (gold_one, gold_two, gold_three)]
                async with http.stream(
                    "GET", "/streams/sse/partners/acme/orders", params={"access_token": free}
                ) as partners:
                    pass
    assert orders == [202] * 10 + [429]
    assert third_free.status_code == 429  # "free": two connections at once
    assert third_free.headers["RateLimit-Policy"] == '"free-max_connections";q=2;w=0'
    assert gold_streams == [200, 200, 200]
    assert partners.status_code == 200  # the router's own plan, not "free"'s connections


async def test_metrics_page() -> None:
    from docs_src.observability.metrics import app

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            for value in (1.0, 2.0):
                answer = await http.post(
                    "/streams/publish/sensors/s1", json={"sensor": "s1", "value": value}
                )
                assert answer.status_code == 202
            text = (await http.get("/metrics")).text
    assert 'streaming_events_published_total{topic="/sensors/{sensor}"} 2.0' in text
    assert "/sensors/s1" not in text
