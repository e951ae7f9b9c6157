"""The hub's database statements on the real SQLite and PostgreSQL, with several workers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, update

from fastapi_streaming.websub import WebSubSettings
from fastapi_streaming.websub.repository import IncomingEvent, NewSubscription, Repository

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> WebSubSettings:
    prefix = f"ws{uuid.uuid4().hex[:10]}_"
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        return WebSubSettings(database_url=POSTGRES_URL, table_prefix=prefix)
    return WebSubSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}", table_prefix=prefix
    )


@pytest.fixture
async def workers(settings: WebSubSettings) -> AsyncIterator[list[Repository]]:
    """Three repositories with their own engines, as three worker processes would have."""
    repos = [Repository(settings) for _ in range(3)]
    try:
        await asyncio.gather(*(repo.create_schema() for repo in repos))
        yield repos
    finally:
        await repos[0].drop_schema()
        for repo in repos:
            await repo.close()


async def add_subscription(repo: Repository, callback: str, lease: int = 600) -> int:
    await repo.save_subscription(
        NewSubscription(
            topic="/t",
            callback=callback,
            callback_host="127.0.0.1",
            topic_url="/t",
            self_url="http://hub/streams/websub/t",
            hub_url="http://hub/streams/websub/hub",
            secret=None,
            lease_seconds=lease,
            verified_at=time.time(),
        )
    )
    found = await repo.subscription("/t", callback)
    assert found is not None
    return int(found["id"])


def events(count: int) -> list[IncomingEvent]:
    return [IncomingEvent("/t", f"e{n}", f'{{"n":{n}}}'.encode()) for n in range(count)]


async def test_workers_starting_together_create_every_table_and_index(
    workers: list[Repository],
) -> None:
    def inspect_schema(connection: Connection) -> dict[str, set[str]]:
        inspector = inspect(connection)
        return {
            table: {index["name"] or "" for index in inspector.get_indexes(table)}
            for table in workers[0].tables.metadata.tables
        }

    async with workers[1].engine.connect() as conn:
        found = await conn.run_sync(inspect_schema)
    expected = {
        table.name: {index.name or "" for index in table.indexes}
        for table in workers[0].tables.metadata.sorted_tables
    }
    for table, indexes in expected.items():
        assert indexes <= found[table], table


async def test_every_worker_records_every_event_and_each_is_kept_once(
    workers: list[Repository],
) -> None:
    await add_subscription(workers[0], "http://a/")
    await add_subscription(workers[0], "http://b/")
    batch = events(50)
    await asyncio.gather(*(repo.record(batch) for repo in workers))
    await workers[1].record(batch[:10])
    assert await workers[0].delivery_counts() == {"pending": 100, "done": 0, "failed": 0}


async def test_concurrent_claims_never_hand_one_delivery_to_two_workers(
    workers: list[Repository],
) -> None:
    for n in range(30):
        await add_subscription(workers[0], f"http://s{n}/")
    await workers[0].record(events(10))

    async def drain(repo: Repository) -> list[int]:
        taken: list[int] = []
        while claimed := await repo.claim(16, {}):
            taken.extend(item.id for item in claimed)
            for item in claimed:
                assert await repo.succeeded(item)
        return taken

    shares = await asyncio.gather(*(drain(repo) for repo in workers))
    every = [delivery for share in shares for delivery in share]
    assert len(every) == 300
    assert len(set(every)) == 300
    assert await workers[0].delivery_counts() == {"pending": 0, "done": 300, "failed": 0}


async def test_a_claim_respects_the_per_subscriber_limit(workers: list[Repository]) -> None:
    repo = workers[0]
    one = await add_subscription(repo, "http://one/")
    two = await add_subscription(repo, "http://two/")
    await repo.record(events(10))
    claimed = await repo.claim(50, {one: 3})
    per = repo.settings.per_subscriber_concurrency
    by_subscription = {one: 0, two: 0}
    for item in claimed:
        by_subscription[item.subscription_id] += 1
    assert by_subscription == {one: per - 3, two: per}
    assert [item.event_id for item in claimed if item.subscription_id == two] == [
        f"e{n}" for n in range(per)
    ], "oldest first"


async def test_an_abandoned_claim_runs_out_and_the_delivery_is_attempted_again(
    workers: list[Repository],
) -> None:
    first, second = workers[0], workers[1]
    await add_subscription(first, "http://one/")
    await first.record(events(1))
    (claimed,) = await first.claim(10, {})
    assert await second.claim(10, {}) == [], "claimed deliveries are not due"
    table = first.tables.deliveries
    async with first.engine.begin() as conn:  # the claim's time runs out
        await conn.execute(update(table).values(next_attempt_at=time.time() - 1))
    (again,) = await second.claim(10, {})
    assert again.id == claimed.id and again.attempts == 2
    assert not await first.succeeded(claimed), "the first worker's claim is no longer valid"
    assert await second.succeeded(again)


async def test_failures_back_off_and_give_up_after_max_attempts(
    workers: list[Repository],
) -> None:
    repo = workers[0]
    await add_subscription(repo, "http://one/")
    await repo.record(events(1))
    attempts = 0
    while True:
        table = repo.tables.deliveries
        async with repo.engine.begin() as conn:
            await conn.execute(update(table).values(next_attempt_at=time.time() - 1))
        claimed = await repo.claim(10, {})
        if not claimed:
            break
        attempts += 1
        assert await repo.failed(claimed[0], "answered HTTP 500", 0.5)
    assert attempts == repo.settings.max_attempts
    assert await repo.delivery_counts() == {"pending": 0, "done": 0, "failed": 1}


async def test_cleanup_removes_expired_subscriptions_with_their_deliveries(
    workers: list[Repository],
) -> None:
    repo = workers[0]
    await add_subscription(repo, "http://brief/", lease=1)
    await add_subscription(repo, "http://long/", lease=600)
    await repo.record(events(3))
    assert await repo.live_topics() == {"/t"}
    await asyncio.sleep(1.1)
    assert [c.callback for c in await repo.claim(10, {})] == ["http://long/"] * 3
    await repo.cleanup()
    assert await repo.subscription("/t", "http://brief/") is None
    assert await repo.subscription("/t", "http://long/") is not None
    assert sum((await repo.delivery_counts()).values()) == 3


async def test_tables_of_an_older_release_gain_the_newer_columns_at_startup(
    workers: list[Repository],
) -> None:
    old = workers[0]
    await add_subscription(old, "http://old/")
    table = old.tables.subscriptions.name
    async with old.engine.begin() as conn:  # the subscriptions table as an older release made it
        for column in ("paused_at", "principal", "plan"):
            await conn.exec_driver_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    upgraded = Repository(old.settings)
    try:
        await upgraded.create_schema()
        await upgraded.record(events(1))
        [before] = await upgraded.claim(10, {})
        # Renewed by its subscriber, it records whom its deliveries count to.
        await upgraded.save_subscription(
            NewSubscription(
                topic="/t",
                callback="http://old/",
                callback_host="127.0.0.1",
                topic_url="/t",
                self_url="http://hub/streams/websub/t",
                hub_url="http://hub/streams/websub/hub",
                secret=None,
                lease_seconds=600,
                verified_at=time.time(),
                principal="wanda",
                plan="pro",
            )
        )
        await upgraded.record([IncomingEvent("/t", "later", b"{}")])
        [after] = await upgraded.claim(10, {})
    finally:
        await upgraded.close()
    assert (before.principal, before.plan) == (None, None)
    assert (after.event_id, after.principal, after.plan) == ("later", "wanda", "pro")
