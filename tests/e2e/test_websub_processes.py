"""WebSub across process deaths and across worker processes, on real servers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fastapi_streaming.websub import WebSubSettings
from fastapi_streaming.websub.repository import Repository
from tests.conftest import REDIS_URL
from tests.support.server import ServerProcess
from tests.support.websub import Subscriber, subscribe

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    prefix = f"ws{uuid.uuid4().hex[:10]}_"
    if request.param == "sqlite":
        yield {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}"}
        return
    request.applymarker(pytest.mark.postgres)
    yield {"DATABASE_URL": POSTGRES_URL, "TABLE_PREFIX": prefix}
    asyncio.run(drop_tables(prefix))


async def drop_tables(prefix: str) -> None:
    repo = Repository(WebSubSettings(database_url=POSTGRES_URL, table_prefix=prefix))
    await repo.drop_schema()
    await repo.close()


async def stats(base: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        answer = await http.get("/test/websub")
    return dict(answer.json())


async def wait_recorded(base: str, count: int, timeout: float = 30) -> None:
    async def poll() -> None:
        while (await stats(base))["recorded"] != count:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), timeout)


async def test_pending_deliveries_survive_sigkill_and_are_delivered_after_restart(
    database: dict[str, str],
) -> None:
    env = {**database, "DELIVERY_TIMEOUT": "0.5", "RETRY_BASE": "0.2", "RETRY_MAX": "0.5"}
    async with Subscriber() as subscriber:
        callback = subscriber.behave("/durable", statuses=[500])
        server = ServerProcess("tests.apps.websub_app:app", env=env).start()
        try:
            answer = await subscribe(server.url, "/notes/k", callback, secret="k-secret")
            assert answer.status_code == 202
            await subscriber.wait_until(lambda: len(subscriber.verifications()) == 1)
            await asyncio.sleep(0.5)
            async with httpx.AsyncClient(base_url=server.url) as http:
                burst = await http.post("/test/burst", params={"address": "/notes/k", "count": 20})
                assert burst.status_code == 200
            await wait_recorded(server.url, 20)
            # Every event has failed at least once and is waiting for its next attempt.
            await subscriber.wait_until(
                lambda: len({d.body for d in subscriber.deliveries()}) == 20, what="20 tries"
            )
        finally:
            assert server.stop(signal.SIGKILL) == -signal.SIGKILL
        failed_before = len(subscriber.deliveries())

        subscriber.behave("/durable", statuses=[204])
        with ServerProcess("tests.apps.websub_app:app", env=env) as restarted:
            await subscriber.wait_until(
                lambda: len(succeeded(subscriber, failed_before)) == 20,
                timeout=30,
                what="every event delivered after the restart",
            )
            assert (await stats(restarted.url))["recorded"] == 0, "nothing was re-published"

        bodies = [json.loads(d.body)["seq"] for d in subscriber.deliveries()[failed_before:]]
        assert sorted(set(bodies)) == list(range(20))
        for delivery in subscriber.deliveries():
            expected = hmac.new(b"k-secret", delivery.body, hashlib.sha256).hexdigest()
            assert delivery.headers["x-hub-signature"] == "sha256=" + expected


def succeeded(subscriber: Subscriber, after: int) -> set[str]:
    return {d.headers["x-hub-event-id"] for d in subscriber.deliveries()[after:]}


@pytest.mark.redis
@pytest.mark.postgres
async def test_three_workers_deliver_each_event_once_to_each_subscriber() -> None:
    prefix = f"ws{uuid.uuid4().hex[:10]}_"
    env = {
        "BROKER_URL": REDIS_URL,
        "DATABASE_URL": POSTGRES_URL,
        "TABLE_PREFIX": prefix,
        "CHANNEL_PREFIX": f"t{uuid.uuid4().hex[:10]}.",
        "SYNC_INTERVAL": "0.3",
    }
    try:
        async with Subscriber() as subscriber:
            with ServerProcess("tests.apps.websub_app:app", env=env, workers=3) as server:
                callbacks = [subscriber.behave("/plain"), subscriber.behave("/signed")]
                await subscribe(server.url, "/notes/many", callbacks[0])
                await subscribe(server.url, "/notes/many", callbacks[1], secret="three")
                await subscriber.wait_until(lambda: len(subscriber.verifications()) == 2)
                await asyncio.sleep(1.5)  # every worker has joined the topic by now

                async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
                    burst = await http.post(
                        "/test/burst", params={"address": "/notes/many", "count": 1000}
                    )
                    assert burst.status_code == 200
                await subscriber.wait_until(
                    lambda: len(subscriber.deliveries()) >= 2000, timeout=90, what="2000"
                )
                await asyncio.sleep(2)  # any duplicate would arrive meanwhile

                reporting: dict[int, object] = {}
                for _ in range(30):
                    report = await stats(server.url)
                    reporting[int(str(report["pid"]))] = report["recorded"]
        for path in ("/plain", "/signed"):
            ids = Counter(d.headers["x-hub-event-id"] for d in subscriber.deliveries(path))
            assert len(ids) == 1000
            assert max(ids.values()) == 1, "an event reached a subscriber twice"
        assert len(reporting) >= 2, "several workers answered"
        assert set(reporting.values()) == {1000}, "every worker recorded every event"
    finally:
        await drop_tables(prefix)


async def test_a_graceful_stop_is_not_held_up_by_the_hub(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}"}
    async with Subscriber() as subscriber:
        server = ServerProcess("tests.apps.websub_app:app", env=env).start()
        try:
            await subscribe(server.url, "/notes/s", subscriber.behave("/s"))
            await subscriber.wait_until(lambda: len(subscriber.verifications()) == 1)
            await asyncio.sleep(0.3)
            assert (await stats(server.url))["joined"] == ["/notes/s"]
        finally:
            started = time.monotonic()
            assert server.stop(signal.SIGINT) == 0
        assert time.monotonic() - started < 3, server.output()
