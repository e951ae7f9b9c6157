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
