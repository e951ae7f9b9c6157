"""On a SQLite file, a claim and a batch of outcomes each cross to the database thread once.

Through aiosqlite, every statement of a transaction went to its thread and back several times,
each crossing a wake-up of the event loop from that thread; the hub spent as much CPU on those
as on sending the deliveries. The wake-ups are counted here (not timed): one per transaction.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from fastapi_streaming.websub import WebSubSettings
from fastapi_streaming.websub.repository import (
    Failure,
    IncomingEvent,
    NewSubscription,
    Repository,
)


def sqlite_repository(path: Path) -> Repository:
    return Repository(WebSubSettings(database_url=f"sqlite+aiosqlite:///{path}"))


async def fill(repo: Repository, subscribers: int, events: int) -> None:
    await repo.create_schema()
    for n in range(subscribers):
        await repo.save_subscription(
            NewSubscription(
                topic="/t",
                callback=f"http://s{n}/",
                callback_host=f"s{n}",
                topic_url="/t",
                self_url="http://hub/streams/websub/t",
                hub_url="http://hub/streams/websub/hub",
                secret=None,
                lease_seconds=600,
                verified_at=time.time(),
            )
        )
    await repo.record([IncomingEvent("/t", f"e{n}", b"{}") for n in range(events)])


async def test_a_claim_and_a_batch_of_outcomes_each_wake_the_event_loop_once(
    tmp_path: Path,
) -> None:
    repo = sqlite_repository(tmp_path / "hub.sqlite3")
    try:
        await fill(repo, subscribers=20, events=3)
        loop = asyncio.get_running_loop()
        original = loop.call_soon_threadsafe
        wakes = 0

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal wakes
            wakes += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        try:
            claimed = await repo.claim(64, {})
            claim_wakes, wakes = wakes, 0
            done, failed = claimed[:50], [Failure(item, "HTTP 500", 0.5) for item in claimed[50:]]
            assert await repo.record_outcomes(done, failed) == (50, 10)
            record_wakes = wakes
        finally:
            del loop.call_soon_threadsafe
        assert len(claimed) == 60
        assert (claim_wakes, record_wakes) == (1, 1)
        assert await repo.delivery_counts() == {"pending": 10, "done": 50, "failed": 0}
        assert await repo.retry_queue_depth() == 10
    finally:
        await repo.close()


async def claim_cancelled_on_stop(path: Path) -> None:
    repo = sqlite_repository(path)
    await fill(repo, subscribers=5, events=5)
    task = asyncio.create_task(repo.claim(64, {}))
    await asyncio.sleep(0)  # the claim is now with the database thread
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await repo.close()


def test_a_claim_cancelled_on_stop_is_waited_for_and_its_thread_ends(tmp_path: Path) -> None:
    failures: list[str] = []
    hook = threading.excepthook
    threading.excepthook = lambda args: failures.append(f"{args.thread}: {args.exc_value!r}")
    try:
        for round_ in range(5):
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(claim_cancelled_on_stop(tmp_path / f"{round_}.sqlite3"))
            finally:
                loop.close()
    finally:
        threading.excepthook = hook
    assert failures == []
    for thread in threading.enumerate():
        if thread.name.startswith("websub-sqlite"):
            thread.join(10)
            assert not thread.is_alive()
