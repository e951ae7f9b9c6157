"""Say where a test hangs: the stack of every asyncio task, printed before the test's timeout.

pytest-timeout shows the threads' stacks, and an event loop waiting for a task that never
finishes shows only ``select()``. A test that once hung in CI wraps its body in
:func:`tasks_dumped_after`, so the next time it says which await it was stuck in.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def tasks_dumped_after(seconds: float) -> AsyncIterator[None]:
    """Print every task's stack to stderr if the block still runs after ``seconds``."""

    async def dump() -> None:
        await asyncio.sleep(seconds)
        print(f"--- still running after {seconds} s; the tasks:", file=sys.stderr)
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                print(f"--- task {task.get_name()}", file=sys.stderr)
                task.print_stack(file=sys.stderr)

    watcher = asyncio.create_task(dump(), name="hang reporter")
    try:
        yield
    finally:
        watcher.cancel()
