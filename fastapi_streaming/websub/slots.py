"""A first-come first-served limit on concurrent work, in constant time per acquisition.

``asyncio.Semaphore`` looks at every waiter on every acquisition (``locked()`` checks them for
cancellation, Python 3.11), which made a worker holding a hundred waiting deliveries spend 7% of
its time there. These slots keep a count and a queue of futures instead.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType


class Slots:
    """At most ``size`` holders at once; the others wait in arrival order."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def __aenter__(self) -> None:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # a slot handed over by a leaving holder: ``free`` stays as it is
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed over just as this waiter was cancelled: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1
