"""The WebSub hub against real subscriber servers on 127.0.0.1, over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastapi_streaming import StreamingAPI
from fastapi_streaming.websub import WebSubSettings
from tests.apps.websub_app import make_app
from tests.support.websub import Subscriber, publish, running_app, subscribe


@pytest.fixture
def settings(tmp_path: Path) -> WebSubSettings:
    return WebSubSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}",
        allow_networks=("127.0.0.1/32",),
        lease_min=1,
        retry_base=0.1,
        retry_max=0.5,
        delivery_timeout=1.0,
        verify_timeout=2.0,
        poll_interval=0.1,
        sync_interval=0.2,
        cleanup_interval=0.2,
    )


class Hub:
    """A running hub app and what the tests need of it."""

    def __init__(self, base: str, streaming: StreamingAPI) -> None:
        self.base = base
        self.streaming = streaming

    def topic_url(self, address: str) -> str:
        return f"{self.base}/streams/websub{address}"

    async def subscribe(self, address: str, callback: str, **extra: str) -> httpx.Response:
        return await subscribe(self.base, self.topic_url(address), callback, **extra)

    async def publish(self, address: str, data: Any) -> str:
        return await publish(self.base, address, data)

    async def active(self, address: str, callback: str) -> dict[str, Any] | None:
        assert self.streaming.websub is not None
        found = await self.streaming.websub.repo.subscription(address, callback)
        return None if found is None else dict(found)

    async def wait_active(self, address: str, callback: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while await self.active(address, callback) is None:
            assert time.monotonic() < deadline, f"{callback} never became active"
            await asyncio.sleep(0.05)


HubFactory = Callable[..., Any]


@pytest.fixture
async def hub(settings: WebSubSettings) -> AsyncIterator[Hub]:
    app, streaming = make_app(settings)
    async with running_app(app) as base:
        yield Hub(base, streaming)


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    async with Subscriber() as running:
        yield running


async def active_subscription(hub: Hub, subscriber: Subscriber, path: str, **extra: Any) -> str:
    callback = subscriber.behave(path, **{k: v for k, v in extra.items() if k != "form"})
    answer = await hub.subscribe("/notes/a", callback, **extra.get("form", {}))
    assert answer.status_code == 202, answer.text
    await hub.wait_active("/notes/a", callback)
    return callback


# -- subscribing ---------------------------------------------------------------------------


async def test_subscription_is_verified_then_receives_signed_events(
    hub: Hub, subscriber: Subscriber
) -> None:
    callback = subscriber.behave("/signed")
    answer = await hub.subscribe(
        "/notes/a", callback, secret="s3cret-of-the-subscriber", lease_seconds="600"
    )
    assert answer.status_code == 202
    assert answer.headers["content-type"].startswith("text/plain")

    await subscriber.wait_until(lambda: len(subscriber.verifications("/signed")) == 1)
    check = subscriber.verifications("/signed")[0].query
    assert check["hub.mode"] == "subscribe"
    assert check["hub.topic"] == hub.topic_url("/notes/a")
    assert check["hub.lease_seconds"] == "600"
    assert len(check["hub.challenge"]) >= 32
    await hub.wait_active("/notes/a", callback)

    event_id = await hub.publish("/notes/a", {"text": "hello"})
    await subscriber.wait_until(lambda: len(subscriber.deliveries("/signed")) == 1)
    delivery = subscriber.deliveries("/signed")[0]
    assert json.loads(delivery.body) == {"text": "hello", "seq": 0}
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["x-hub-event-id"] == event_id
    expected = hmac.new(b"s3cret-of-the-subscriber", delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["x-hub-signature"] == f"sha256={expected}"
    link = delivery.headers["link"]
    assert f'<{hub.base}/streams/websub/hub>; rel="hub"' in link
    assert f'<{hub.topic_url("/notes/a")}>; rel="self"' in link
