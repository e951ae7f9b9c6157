"""Counting turns of the event loop: what a call waits for, measured without a clock.

A task that yields once per turn counts them; the difference across an ``await`` is how many
turns it took (0: it never handed the loop on). Counts do not depend on the machine's load,
where timings would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class TurnCounter:
    """``turns`` goes up by one on every turn of the running loop while counting."""

    def __init__(self) -> None:
        self.turns = 0
        self._running = True

    async def _count(self) -> None:
        while self._running:
            self.turns += 1
            await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def counting_turns() -> AsyncIterator[TurnCounter]:
    """A :class:`TurnCounter` counting for the duration of the block."""
    counter = TurnCounter()
    task = asyncio.create_task(counter._count(), name="turn counter")
    try:
        yield counter
    finally:
        counter._running = False
        await task
