"""Plans over real sockets: quotas, publish rates, connection caps and durations.

Each test runs the limits app in a uvicorn process, with its counters in memory or in the
shared Redis (under a namespace of its own).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.clients import receive_json, send_json, sse_stream
from tests.support.server import ServerProcess
from tests.support.websub import Subscriber

SECRET = "limits-test-secret-that-is-long-enough-for-hs256"
STORAGES = {"memory": "memory://", "redis": "redis://127.0.0.1:6379/0"}


def token(sub: str, **claims: Any) -> str:
    payload = {"sub": sub, "exp": int(time.time()) + 600, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


def bearer(sub: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, **claims)}"}


def app_env(storage: str, **extra: str) -> dict[str, str]:
    return {
        "JWT_SECRET": SECRET,
        "LIMITS_STORAGE": storage,
        "LIMITS_NAMESPACE": f"t-{uuid.uuid4().hex[:10]}",
        "CHANNEL_PREFIX": f"t{uuid.uuid4().hex[:10]}.",
        **extra,
    }


@pytest.fixture(params=list(STORAGES), ids=list(STORAGES))
def storage(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        request.applymarker(pytest.mark.redis)
    return STORAGES[request.param]


@pytest.fixture
def server(storage: str) -> Iterator[ServerProcess]:
    with ServerProcess("tests.apps.limits_app:app", env=app_env(storage)) as running:
        yield running


async def test_sse_stream_ends_with_the_reason_when_the_quota_is_spent(
    server: ServerProcess,
) -> None:
    # "tiny" allows 6 events a minute: opening the stream is one, then 5 events at most
    # (plus what one flush interval lets through), then a last `close` event.
    async with (
        sse_stream(server.url, "/streams/sse/feed/a", access_token=token("ann", plan="tiny")) as s,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        for number in range(20):
            answer = await http.post(
                "/streams/publish/feed/a", json={"n": number}, headers=bearer("publisher")
            )
            assert answer.status_code == 202
            await asyncio.sleep(0.05)
        await asyncio.wait_for(s.ended.wait(), 10)
    close = [event for event in s.events if event.event == "close"]
    assert len(close) == 1
    ending = json.loads(close[0].data)
    assert ending["reason"] == "quota_exceeded"
    assert "tiny" in ending["detail"]
    assert 1 <= ending["retry_after"] <= 60
    delivered = s.data()
    # Documented tolerance: what arrives within one flush interval (0.2 s) past the quota.
    assert 5 <= len(delivered) <= 5 + 5
    async with httpx.AsyncClient(base_url=server.url) as http:
        again = await http.get(
            "/streams/sse/feed/a", params={"access_token": token("ann", plan="tiny")}
        )
    assert again.status_code == 429
    assert 1 <= int(again.headers["Retry-After"]) <= 60
    assert again.headers["RateLimit-Policy"] == '"tiny-quota";q=6;w=60'
    assert again.headers["RateLimit"].startswith('"tiny-quota";r=0;t=')


async def test_a_multi_topic_request_counts_once_per_topic(server: ServerProcess) -> None:
    topics = [f"/feed/{name}" for name in "abcdefg"]  # 7 topics, quota 6
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = await http.get(
            "/streams/sse",
            params={"topic": topics, "access_token": token("bob", plan="tiny")},
        )
        async with http.stream(
            "GET",
            "/streams/sse",
            params={"topic": topics[:6], "access_token": token("cyd", plan="tiny")},
        ) as allowed:
            assert allowed.status_code == 200
    assert refused.status_code == 429
    assert refused.json()["detail"].startswith("Plan 'tiny' allows a quota of 6 events")


async def test_http_publishes_over_the_rate_get_429(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        answers = [
            await http.post(
                "/streams/publish/feed/x", json={"n": n}, headers=bearer("dan", plan="slow")
            )
            for n in range(3)
        ]
        other = await http.post(
            "/streams/publish/feed/x", json={"n": 0}, headers=bearer("eve", plan="slow")
        )
    assert [answer.status_code for answer in answers] == [202, 202, 429]
    assert other.status_code == 202  # counters are per principal
    refused = answers[2]
    assert refused.headers["RateLimit-Policy"] == '"slow-publish_rate";q=2;w=60'
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["detail"] == (
        "Plan 'slow' allows 2 publishes per 60 s; that limit is reached. "
        f"Come back in {refused.headers['Retry-After']} s."
    )


async def test_a_socket_of_one_topic_closes_1008_on_a_publish_over_the_rate(
    server: ServerProcess,
) -> None:
    url = f"{server.ws_url}/streams/ws/feed/y?access_token={token('fay', plan='slow')}"
    async with connect(url, open_timeout=10) as ws:
        await send_json(ws, {"n": 1})
        await send_json(ws, {"n": 2})
        await send_json(ws, {"n": 3})
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert "Plan 'slow' allows 2 publishes" in closed.value.rcvd.reason


async def test_the_multiplexed_socket_refuses_only_the_message_over_the_limit(
    server: ServerProcess,
) -> None:
    url = f"{server.ws_url}/streams/ws?access_token={token('gus', plan='slow')}"
    async with connect(url, open_timeout=10) as ws:
        replies = []
        for number in range(3):
            await send_json(
                ws, {"type": "publish", "id": number, "topic": "/feed/z", "data": {"n": number}}
            )
            replies.append(await receive_json(ws))
        await send_json(ws, {"type": "subscribe", "id": "s", "topic": "/feed/z"})
        after = await receive_json(ws)
    assert [reply["type"] for reply in replies] == ["ack", "ack", "error"]
    refused = replies[2]
    assert refused["id"] == 2
    assert refused["code"] == 429
    assert refused["error"] == "quota_exceeded"
    assert refused["limit"] == "publish_rate"
    assert refused["plan"] == "slow"
    assert 1 <= refused["retry_after"] <= 60
    assert after == {"type": "ack", "id": "s"}  # still open


async def test_a_principal_holds_at_most_its_plans_connections(server: ServerProcess) -> None:
    owner = token("hal", plan="pair")
    async with (
        sse_stream(server.url, "/streams/sse/feed/c", access_token=owner) as first,
        sse_stream(server.url, "/streams/sse/feed/c", access_token=owner) as second,
    ):
        assert first.response is not None and first.response.status_code == 200
        assert second.response is not None and second.response.status_code == 200
        async with httpx.AsyncClient(base_url=server.url) as http:
            third = await http.get("/streams/sse/feed/c", params={"access_token": owner})
        with pytest.raises(InvalidStatus) as refused_socket:
            async with connect(f"{server.ws_url}/streams/ws/feed/c?access_token={owner}"):
                pass
    assert third.status_code == 429
    assert third.headers["RateLimit-Policy"] == '"pair-max_connections";q=2;w=0'
    assert refused_socket.value.response.status_code == 429
    # Both streams ended: their slots are free again (released when the server sees them go).
    deadline = time.monotonic() + 10
    async with httpx.AsyncClient(base_url=server.url) as http:
        while True:
            async with http.stream(
                "GET", "/streams/sse/feed/c", params={"access_token": owner}
            ) as again:
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, "the connection slots were never released"
            await asyncio.sleep(0.1)


async def test_connections_end_at_the_plans_maximum_duration(server: ServerProcess) -> None:
    short = token("ida", plan="short")
    started = time.monotonic()
    async with sse_stream(server.url, "/streams/sse/feed/d", access_token=short) as stream:
        await asyncio.wait_for(stream.ended.wait(), 10)
    lasted = time.monotonic() - started
    ending = json.loads(next(e for e in stream.events if e.event == "close").data)
    assert ending["reason"] == "quota_exceeded"
    assert "connections of at most 1 s" in ending["detail"]
    assert lasted >= 1.4
    async with connect(f"{server.ws_url}/streams/ws/feed/d?access_token={short}") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_plans_declared_on_a_topic_and_on_a_router(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        special = [
            (await http.post("/streams/publish/special", json={}, headers=bearer("jo"))).status_code
            for _ in range(2)
        ]
        grouped = [
            (
                await http.post(f"/streams/publish/grouped/{name}", json={}, headers=bearer("jo"))
            ).status_code
            for name in ("a", "b", "c")
        ]
        unlimited = [
            (await http.post("/streams/publish/feed/q", json={}, headers=bearer("jo"))).status_code
            for _ in range(5)
        ]
    assert special == [202, 429]
    assert grouped == [202, 202, 429]  # one counter for every topic of the router
    assert unlimited == [202] * 5  # the token names no plan: the API's chooser gives none


async def test_metrics_count_publishes_deliveries_and_throttles(server: ServerProcess) -> None:
    async with (
        sse_stream(server.url, "/streams/sse/feed/m", access_token=token("kim")) as stream,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        for number in range(3):
            await http.post("/streams/publish/feed/m", json={"n": number}, headers=bearer("kim"))
        await stream.wait_for(3)
        for _ in range(3):
            await http.post("/streams/publish/feed/m", json={}, headers=bearer("lu", plan="slow"))
        text = (await http.get("/metrics")).text
    samples = _samples(text)
    assert samples['streaming_events_published_total{topic="/feed/{name}"}'] == 5
    assert samples['streaming_events_sent_total{topic="/feed/{name}"}'] == 5
    assert samples['streaming_connections{topic="/feed/{name}",transport="sse"}'] == 1
    assert samples['streaming_quota_throttles_total{limit="publish_rate",plan="slow"}'] == 1
    assert not any("/feed/m" in line for line in text.splitlines())  # templates, not addresses


def _samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def test_websub_deliveries_over_the_quota_are_not_attempted_and_are_counted(
    tmp_path: Path,
) -> None:
    env = app_env("memory://", WEBSUB_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    with ServerProcess("tests.apps.limits_app:app", env=env) as server:
        async with Subscriber() as subscriber, httpx.AsyncClient(base_url=server.url) as http:
            callback = subscriber.behave("/tiny")
            answer = await http.post(
                "/streams/websub/hub",
                data={
                    "hub.mode": "subscribe",
                    "hub.topic": f"{server.url}/streams/websub/feed/hooks",
                    "hub.callback": callback,
                },
                headers=bearer("ola", plan="tiny"),  # 6 events a minute
            )
            assert answer.status_code == 202
            await subscriber.wait_until(lambda: len(subscriber.verifications("/tiny")) == 1)
            # The hub activates the subscription just after the subscriber confirms: publish
            # until one event is delivered (events before that are not for it).
            deadline = time.monotonic() + 15
            while not subscriber.deliveries("/tiny"):
                assert time.monotonic() < deadline, "the subscription never became active"
                await http.post("/streams/publish/feed/hooks", json={}, headers=bearer("pub"))
                await asyncio.sleep(0.3)
            for number in range(10):
                published = await http.post(
                    "/streams/publish/feed/hooks", json={"n": number}, headers=bearer("pub")
                )
                assert published.status_code == 202
            # At least 1 + 10 events for a quota of 6: at least 5 are not attempted.
            deadline = time.monotonic() + 15
            while (samples := _samples((await http.get("/metrics")).text)).get(
                'streaming_websub_deliveries_total{outcome="over_quota"}', 0
            ) < 5:
                assert time.monotonic() < deadline, samples
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)  # nothing more arrives
            samples = _samples((await http.get("/metrics")).text)
        delivered = subscriber.deliveries("/tiny")
    assert len(delivered) == 6
    assert samples['streaming_websub_deliveries_total{outcome="delivered"}'] == 6
    over_quota = samples['streaming_websub_deliveries_total{outcome="over_quota"}']
    assert samples['streaming_quota_throttles_total{limit="quota",plan="tiny"}'] == over_quota
