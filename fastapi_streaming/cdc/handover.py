"""Handing items from a reader thread to the event loop, bounded, without waiting on the loop.

Database replication clients block, so each source reads in a thread of its own. The thread
puts batches with ``call_soon_threadsafe`` (never waiting for the event loop to run) and waits
only when the loop already holds ``max_items`` unread batches: a slow broker slows reading down
instead of filling memory.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class Stopped(Exception):
    """The reader was asked to stop while it waited for room."""


class Handover:
    def __init__(self, loop: asyncio.AbstractEventLoop, stop: threading.Event, max_items: int = 8):
        self.loop = loop
        self.stop = stop
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self._room = threading.Semaphore(max_items)

    def put(self, item: Any, *, stopping: bool = True) -> None:
        """From the thread: hand ``item`` over, waiting while the loop holds too many."""
        while not self._room.acquire(timeout=0.5):
            if stopping and self.stop.is_set():
                raise Stopped
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone
            raise Stopped from None

    async def get(self, timeout: float) -> Any:
        """From the loop: the next item, or None after ``timeout`` seconds.

        Not ``asyncio.wait_for``: on Python 3.11 a cancellation that meets an item arriving
        from the thread can be lost, and capture would then never stop.
        """
        getter = asyncio.ensure_future(self.queue.get())
        try:
            await asyncio.wait({getter}, timeout=timeout)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.cancelled() or not getter.done():
            return None
        self._room.release()
        return getter.result()
