"""A stopped task ends even when its first cancellation is swallowed."""

from __future__ import annotations

import asyncio

from fastapi_streaming.stopping import cancel_until_done


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again_until_it_ends() -> None:
    """As Python 3.11's ``wait_for`` does when the cancellation meets its call's completion
    (seen in CI: a lease owner renewing as the API stopped went on renewing, and the shutdown
    waited for it for ever)."""
    swallowed = 0

    async def renew_forever() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    task = asyncio.create_task(renew_forever())
    await asyncio.sleep(0.02)
    await asyncio.wait_for(cancel_until_done([task], retry=0.05), 2)
    assert task.cancelled() and swallowed == 1


async def test_tasks_that_end_at_once_are_not_waited_for() -> None:
    tasks = [asyncio.create_task(asyncio.sleep(10)) for _ in range(3)]
    await asyncio.wait_for(cancel_until_done(tasks, retry=10), 1)
    assert all(task.cancelled() for task in tasks)
