"""Stopping a task for sure, even when a library swallows its cancellation.

A task that computes under a lease must end when it is stopped, or it computes on after the
lease is released. Two things can eat a cancellation: nats-py does while it flushes, and on
Python 3.11 ``asyncio.wait_for`` (which redis-py runs around socket sends) returns normally
when the cancellation arrives as the call it waits for completes. The task then goes on as if
never cancelled, and whoever awaits it waits for ever. So the task is cancelled again until it
ends.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: Seconds to wait for a cancelled task before cancelling it again.
STOP_RETRY = 0.5


async def cancel_until_done(tasks: list[asyncio.Task[Any]], retry: float = STOP_RETRY) -> None:
    """Cancel every task, and again every ``retry`` seconds until each has ended.

    Their outcome (``CancelledError`` or an exception) is left to the caller to collect.
    """
    for task in tasks:
        task.cancel()
    for task in tasks:
        while not task.done():
            await asyncio.wait({task}, timeout=retry)
            if not task.done():
                task.cancel()
