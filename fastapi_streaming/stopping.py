"""Stopping a background task for sure, even when a library swallows its cancellation.

A worker's background tasks (a topic's broker reader, the limits and analytics flushers, the
console, a derived topic's owner) must end when the API stops, or the shutdown waits for them
for ever, and a derived topic would compute on after its lease is released. Two things can
eat a cancellation: nats-py does while it flushes, and on Python 3.11 ``asyncio.wait_for``
(which redis-py runs around socket sends) returns normally when the cancellation arrives as
the call it waits for completes; a task that catches the ``ConnectionError`` a client makes of
a cancellation does too. The task then goes on as if never cancelled. So it is cancelled again
until it ends.
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
