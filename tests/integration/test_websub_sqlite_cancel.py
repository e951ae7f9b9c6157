"""A hub task cancelled while SQLite opens a connection leaves no database call behind.

aiosqlite runs every connection in a thread of its own, which hands each result back to the
event loop. A connection cancelled halfway through opening used to be dropped unclosed while
its thread went on: the thread handed its result to the loop after the loop had closed
(``RuntimeError: Event loop is closed`` in the thread). The hub cancels its workers on stop,
whatever they are doing, and the app's loop may end right after.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from fastapi_streaming.websub import WebSubSettings
from fastapi_streaming.websub.repository import Repository


async def cancel_while_connecting(path: Path) -> None:
    repo = Repository(WebSubSettings(database_url=f"sqlite+aiosqlite:///{path}"))
    task = asyncio.create_task(repo.cleanup())
    await asyncio.sleep(0)  # the task now waits for its connection to open
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    await repo.close()


def test_a_connection_cancelled_while_opening_is_closed_before_the_loop_ends(
    tmp_path: Path,
) -> None:
    # Each round leaks a call with good odds when connections are dropped unclosed; all
    # rounds together make a leak certain to show.
    failures: list[str] = []
    hook = threading.excepthook
    threading.excepthook = lambda args: failures.append(f"{args.thread}: {args.exc_value!r}")
    try:
        for round_ in range(20):
            before = set(threading.enumerate())
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(cancel_while_connecting(tmp_path / f"{round_}.sqlite3"))
            finally:
                loop.close()
            for thread in set(threading.enumerate()) - before:
                thread.join(10)
    finally:
        threading.excepthook = hook
    assert failures == []
