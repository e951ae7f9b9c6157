"""The console's admin routes over real HTTP, on docs_src/console/app.py under uvicorn."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.console.support import (
    SECRET,
    admin_headers,
    bearer,
    eventually,
    snapshot,
    token,
)
from tests.support.clients import sse_stream, websocket
from tests.support.server import ServerProcess
from tests.support.websub import Subscriber, subscribe


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        "JWT_SECRET": SECRET,
        "WEBSUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/websub.db",
    }
    with ServerProcess("docs_src.console.app:app", env=env) as running:
        yield running


async def test_every_console_route_needs_the_admin_scope(server: ServerProcess) -> None:
    routes = [
        ("GET", "/streams/console"),
        ("GET", "/streams/admin/snapshot"),
        ("GET", "/streams/admin/events"),
        ("GET", "/streams/admin/usage"),
        ("POST", "/streams/admin/principals/alice/disconnect"),
        ("POST", "/streams/admin/websub/subscriptions/1/pause"),
        ("POST", "/streams/admin/websub/subscriptions/1/resume"),
        ("DELETE", "/streams/admin/websub/subscriptions/1"),
    ]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        for method, path in routes:
            anonymous = await http.request(method, path)
            user = await http.request(method, path, headers=bearer("alice"))
            assert anonymous.status_code == 401, (path, anonymous.text)
            assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
            assert user.status_code == 403, (path, user.text)
            assert "insufficient_scope" in user.headers["WWW-Authenticate"]
        page = await http.get("/streams/console", headers=admin_headers())
        script = await http.get("/streams/console/static/console.js")
        style = await http.get("/streams/console/static/console.css")
    assert page.status_code == 200 and "Streams console" in page.text
    # Self-hosted: the page loads nothing but the app's own assets.
    assert "/streams/console/static/console.js" in page.text and "http" not in page.text
    assert script.status_code == 200 and "EventSource" in script.text
    assert style.status_code == 200


async def test_the_snapshot_shows_live_clients_and_their_usage(server: ServerProcess) -> None:
    async with (
        sse_stream(server.url, "/streams/sse/rooms/1", access_token=token("bob")) as bob,
        websocket(
            f"{server.ws_url}/streams/ws/rooms/2", additional_headers=bearer("carol")
        ) as carol,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        board = await eventually(
            lambda: snapshot(server.url),
            lambda b: b["transports"].get("sse") == 1 and b["transports"].get("websocket") == 1,
            what="one SSE and one WebSocket client",
        )
        topics = {t["topic"]: t for t in board["topics"]}
        assert topics["/rooms/{room}"]["subscribers"] == 2
        assert topics["/rooms/{room}"]["addresses"] == 2
        for n in range(3):
            answer = await http.post(
                "/streams/publish/rooms/1", json={"n": n}, headers=bearer("alice")
            )
            assert answer.status_code == 202
        await carol.send(json.dumps({"n": 9}))
        await bob.wait_for(3)
        # Publishes are counted when made, deliveries at a worker's next flush: wait for both.
        usage = await eventually(
            lambda: _usage(http, by="principal,plan,topic"),
            lambda u: any(
                t["principal"] == "carol" and t["published"] and t["delivered"] for t in u["totals"]
            ),
            what="carol's publish and its delivery back to carol",
        )
        board = await snapshot(server.url)
    totals = {(t["principal"], t["plan"], t["topic"]): t for t in usage["totals"]}
    assert totals[("bob", "free", "/rooms/{room}")]["delivered"] == 3
    assert totals[("alice", "free", "/rooms/{room}")]["published"] == 3
    assert totals[("carol", "free", "/rooms/{room}")]["published"] == 1
    assert totals[("carol", "free", "/rooms/{room}")]["delivered"] == 1  # its own message
    consumers = {c["principal"]: c for c in board["top_consumers"]}
    assert consumers["bob"]["connections"] == 1 and consumers["bob"]["transports"] == {"sse": 1}
    assert consumers["bob"]["delivered"] == 3
    assert board["health"]["status"] == "ok"


async def _usage(http: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    answer = await http.get("/streams/admin/usage", params=params, headers=admin_headers())
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_usage_records_come_per_minute_and_narrow_down(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        for sub in ("alice", "dave"):
            answer = await http.post(
                "/streams/publish/rooms/7", json={"by": sub}, headers=bearer(sub)
            )
            assert answer.status_code == 202
        only_dave = await _usage(http, principal="dave")
        refused = await http.get(
            "/streams/admin/usage", params={"by": "colour"}, headers=admin_headers()
        )
    assert only_dave["bucket_seconds"] == 60
    [record] = only_dave["records"]
    assert record["principal"] == "dave" and record["published"] == 1
    assert record["topic"] == "/rooms/{room}" and record["start"].endswith(":00+00:00")
    assert refused.status_code == 400 and "colour" in refused.text


async def test_a_throttled_principal_is_listed(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        statuses = [
            (
                await http.post("/streams/publish/rooms/1", json={}, headers=bearer("eve"))
            ).status_code
            for _ in range(12)
        ]
        assert 429 in statuses  # the free plan's burst is 10
        board = await eventually(
            lambda: snapshot(server.url),
            lambda b: any(t["principal"] == "eve" for t in b["throttled"]),
            what="eve among the throttled",
        )
    [eve] = [t for t in board["throttled"] if t["principal"] == "eve"]
    assert eve["plan"] == "free" and eve["throttled"] == statuses.count(429)
    assert {"plan": "free", "limit": "publish_rate", "count": statuses.count(429)} in board[
        "throttles"
    ]


async def test_disconnecting_a_principal_ends_all_its_connections(server: ServerProcess) -> None:
    async with (
        sse_stream(server.url, "/streams/sse/rooms/1", access_token=token("mallory")) as stream,
        websocket(f"{server.ws_url}/streams/ws", additional_headers=bearer("mallory")) as ws,
        sse_stream(server.url, "/streams/sse/rooms/1", access_token=token("bob")) as bystander,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        await eventually(
            lambda: snapshot(server.url),
            lambda b: b["transports"].get("websocket") == 1 and b["transports"].get("sse") == 2,
            what="the three connections",
        )
        answer = await http.post(
            "/streams/admin/principals/mallory/disconnect", headers=admin_headers()
        )
        await asyncio.wait_for(stream.ended.wait(), 10)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        published = await http.post(
            "/streams/publish/rooms/1", json={"still": "here"}, headers=bearer("alice")
        )
        await bystander.wait_for(1)
    assert answer.status_code == 200
    assert answer.json() == {"principal": "mallory", "closed_here": 2, "broadcast": True}
    assert stream.events[-1].event == "close"
    assert json.loads(stream.events[-1].data)["reason"] == "disconnected"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert published.status_code == 202
    assert bystander.data() == [{"still": "here"}]


async def test_pausing_resuming_and_deleting_a_websub_subscription(server: ServerProcess) -> None:
    async with Subscriber() as subscriber, httpx.AsyncClient(base_url=server.url) as http:
        callback = subscriber.url("/hook")
        topic = f"{server.url}/streams/websub/rooms/5"
        answer = await subscribe(
            server.url, topic, callback, lease_seconds="600", **{"secret": "s" * 16}
        )
        assert answer.status_code == 401  # the topic needs rooms:read
        async with httpx.AsyncClient(base_url=server.url, headers=bearer("sub")) as authorized:
            answer = await authorized.post(
                "/streams/websub/hub",
                data={"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": callback},
            )
        assert answer.status_code == 202, answer.text
        board = await eventually(
            lambda: snapshot(server.url),
            lambda b: len(b["websub"]["subscriptions"]) == 1,
            what="the verified subscription",
        )
        [entry] = board["websub"]["subscriptions"]
        assert entry["state"] == "active" and entry["last_delivery"] is None
        base = f"/streams/admin/websub/subscriptions/{entry['id']}"
        admin = admin_headers()

        async def publish(n: int) -> None:
            sent = await http.post("/streams/publish/rooms/5", json={"n": n}, headers=bearer("a"))
            assert sent.status_code == 202

        await publish(1)
        await subscriber.wait_until(lambda: len(subscriber.deliveries("/hook")) == 1)
        assert (await http.post(base + "/pause", headers=admin)).status_code == 200
        await publish(2)
        paused = await eventually(
            lambda: snapshot(server.url),
            lambda b: b["websub"]["subscriptions"][0]["queued"] == 1,
            what="the event waiting for the paused subscription",
        )
        assert paused["websub"]["subscriptions"][0]["state"] == "paused"
        assert paused["websub"]["subscriptions"][0]["last_delivery"] is not None
        assert len(subscriber.deliveries("/hook")) == 1
        assert (await http.post(base + "/resume", headers=admin)).status_code == 200
        await subscriber.wait_until(lambda: len(subscriber.deliveries("/hook")) == 2)
        assert (await http.delete(base, headers=admin)).status_code == 200
        again = await http.delete(base, headers=admin)
        assert again.status_code == 404
        await publish(3)
        board = await snapshot(server.url)
    assert board["websub"]["subscriptions"] == []
    assert [json.loads(r.body) for r in subscriber.deliveries("/hook")] == [{"n": 1}, {"n": 2}]


async def test_websub_deliveries_count_under_the_subscriber(server: ServerProcess) -> None:
    events = 5
    async with (
        Subscriber() as subscriber,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        callback = subscriber.url("/wanda")
        answer = await http.post(
            "/streams/websub/hub",
            data={
                "hub.mode": "subscribe",
                "hub.topic": f"{server.url}/streams/websub/rooms/8",
                "hub.callback": callback,
            },
            headers=bearer("wanda", plan="pro"),
        )
        assert answer.status_code == 202, answer.text
        await eventually(
            lambda: snapshot(server.url),
            lambda b: len(b["websub"]["subscriptions"]) == 1,
            what="the verified subscription",
        )
        for n in range(events):
            sent = await http.post(
                "/streams/publish/rooms/8", json={"n": n}, headers=bearer("alice")
            )
            assert sent.status_code == 202
        await subscriber.wait_until(lambda: len(subscriber.deliveries("/wanda")) == events)
        # Deliveries are counted as their outcomes are recorded, a batch at a time.
        usage = await eventually(
            lambda: _usage(http, by="principal,plan,topic"),
            lambda u: (
                sum(t["delivered"] for t in u["totals"] if t["principal"] == "wanda") >= events
            ),
            what="wanda's deliveries",
        )
        records = (await _usage(http, principal="wanda"))["records"]
        board = await snapshot(server.url)
    totals = {(t["principal"], t["plan"], t["topic"]): t for t in usage["totals"]}
    assert totals[("wanda", "pro", "/rooms/{room}")]["delivered"] == events
    assert not any(t["delivered"] for t in usage["totals"] if t["principal"] == "(server)")
    assert {r["topic"] for r in records} == {"/rooms/{room}"}
    consumers = {c["principal"]: c for c in board["top_consumers"]}
    assert consumers["wanda"]["delivered"] == events
    assert consumers["wanda"]["connections"] == 0  # a WebSub subscriber holds no connection
    assert board["websub"]["subscriptions"][0]["principal"] == "wanda"


async def test_the_admin_event_stream_sends_snapshots(server: ServerProcess) -> None:
    async with sse_stream(
        server.url, "/streams/admin/events", access_token=token("operator", "streams:admin")
    ) as console:
        await console.wait_for(2)
        async with sse_stream(server.url, "/streams/sse/rooms/3", access_token=token("bob")):
            await eventually(
                lambda: asyncio.sleep(0, console.events),
                lambda events: json.loads(events[-1].data)["transports"].get("sse") == 1,
                what="the new SSE client in a snapshot",
            )
    assert {event.event for event in console.events} == {"snapshot"}
    first = json.loads(console.events[0].data)
    assert first["transports"] == {"console": 1}
    assert {"topics", "top_consumers", "throttled", "health", "websub"} <= first.keys()
