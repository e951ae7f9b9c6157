"""Traces across processes: two uvicorn workers on Redis, each exporting its spans to a file of
its own (the SDK's in-memory exporter cannot be read from another process: see
tests/support/span_files.py). A publish over HTTP, over a WebSocket and by ``emit`` each make
one producer span on the worker that took it, and every worker with subscribers makes one
delivery span for the event, whatever its number of clients, a child of the producer span and
linked to it through the ``traceparent`` the event carried through Redis."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL
from tests.support.clients import SSEClient, post, receive_json, send_json, sse_stream, websocket
from tests.support.server import ServerProcess
from tests.support.span_files import read_spans

pytestmark = pytest.mark.redis


@pytest.fixture
def traces_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def workers(traces_dir: Path, channel_prefix: str) -> Iterator[ServerProcess]:
    env = {"BROKER_URL": REDIS_URL, "CHANNEL_PREFIX": channel_prefix, "TRACES_DIR": str(traces_dir)}
    with ServerProcess("tests.apps.tracing_app:app", env=env, workers=2) as running:
        yield running


@pytest.fixture
async def streams(workers: ServerProcess) -> AsyncIterator[dict[str, list[SSEClient]]]:
    """SSE streams of ``/rooms/1`` on new connections until both workers have two or more."""
    by_worker: dict[str, list[SSEClient]] = {}
    async with AsyncExitStack() as stack:
        for _ in range(30):
            client = await stack.enter_async_context(
                sse_stream(workers.url, "/streams/sse/rooms/1")
            )
            assert client.response is not None
            by_worker.setdefault(client.response.headers["x-worker-pid"], []).append(client)
            if len(by_worker) == 2 and all(len(c) >= 2 for c in by_worker.values()):
                break
        assert len(by_worker) == 2, "the kernel never gave a stream to the second worker"
        yield by_worker


def spans_of(traces_dir: Path, event_id: str) -> list[dict[str, Any]]:
    return [
        span
        for span in read_spans(traces_dir)
        if span["attributes"].get("messaging.message.id") == event_id
    ]


async def wait_for_spans(traces_dir: Path, event_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while len(found := spans_of(traces_dir, event_id)) < count:
        assert time.monotonic() < deadline, f"only these spans of {event_id} were written: {found}"
        await asyncio.sleep(0.05)
    return found


async def test_publishes_and_fan_outs_are_traced_across_two_workers(
    workers: ServerProcess, streams: dict[str, list[SSEClient]], traces_dir: Path
) -> None:
    published: dict[str, str] = {}  # event id -> how it was published
    answer = await post(workers.url, "/streams/publish/rooms/1", json={"via": "http"})
    published[answer.json()["id"]] = "http"
    async with websocket(workers.ws_url + "/streams/ws") as socket:
        message = {"type": "publish", "id": 1, "topic": "/rooms/1", "data": {"via": "ws"}}
        await send_json(socket, message)
        ack = await receive_json(socket)
        published[ack["event_id"]] = "websocket"
    answer = await post(workers.url, "/test/emit/1", json={"via": "emit"})
    published[answer.json()["id"]] = "emit"

    clients = [client for found in streams.values() for client in found]
    for client in clients:
        await client.wait_for(3)
        assert {event.id for event in client.events if event.data} == set(published)

    for event_id, via in published.items():
        # One producer span, and one delivery span on each of the two workers.
        spans = await wait_for_spans(traces_dir, event_id, 3)
        await asyncio.sleep(0.2)  # a span per client, were there any, would be written by now
        spans = spans_of(traces_dir, event_id)
        kinds = Counter(span["kind"] for span in spans)
        assert kinds == {"PRODUCER": 1, "CONSUMER": 2}, spans
        (producer,) = [span for span in spans if span["kind"] == "PRODUCER"]
        assert producer["name"] == "publish /rooms/{room}"
        assert producer["attributes"]["fastapi_streaming.via"] == via
        deliveries = [span for span in spans if span["kind"] == "CONSUMER"]
        assert {str(span["pid"]) for span in deliveries} == set(streams)
        for delivery in deliveries:
            assert delivery["name"] == "process /rooms/{room}"
            assert delivery["trace_id"] == producer["trace_id"]
            assert delivery["parent_span_id"] == producer["span_id"]
            assert delivery["links"] == [
                {"trace_id": producer["trace_id"], "span_id": producer["span_id"]}
            ]
            on_this_worker = len(streams[str(delivery["pid"])])
            assert delivery["attributes"]["fastapi_streaming.clients"] == on_this_worker
            assert delivery["attributes"]["messaging.system"] == "redis"
