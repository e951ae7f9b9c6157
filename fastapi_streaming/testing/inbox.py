"""The one reader of a backend under test, the way fastapi-streaming itself reads it.

A backend has exactly one consumer of ``next_published()``: the process's broker listener. The
conformance tests do the same: one task drains the backend into per-channel queues, and the
tests wait on those queues with a deadline, so a backend that never answers fails a test
instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from broadcaster import BroadcastBackend


class BackendFailed(AssertionError):
    """``next_published()`` raised, or returned something that is not an event of text."""


class Inbox:
    """Drains ``backend.next_published()`` and sorts what comes out by channel."""

    def __init__(self, backend: BroadcastBackend) -> None:
        self._backend = backend
        self._queues: dict[str, asyncio.Queue[str]] = {}
        #: How many messages came out of the backend on each channel, duplicates included.
        self.counts: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain(), name="conformance inbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, BackendFailed):
                await self._task
            self._task = None

    async def _drain(self) -> None:
        while True:
            try:
                event = await self._backend.next_published()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise BackendFailed(f"next_published() raised {exc!r}") from exc
            channel, message = getattr(event, "channel", None), getattr(event, "message", None)
            if not isinstance(channel, str) or not isinstance(message, str):
                raise BackendFailed(
                    "next_published() must return an Event whose channel and message are str, "
                    f"got channel={channel!r} and a message of type {type(message).__name__}"
                )
            self.counts[channel] += 1
            self._queue(channel).put_nowait(message)

    def _queue(self, channel: str) -> asyncio.Queue[str]:
        queue = self._queues.get(channel)
        if queue is None:
            queue = self._queues[channel] = asyncio.Queue()
        return queue

    @property
    def failed(self) -> bool:
        """Whether ``next_published()`` raised (or returned something that is not an event)."""
        task = self._task
        return task is not None and task.done() and not task.cancelled() and bool(task.exception())

    def _check_alive(self) -> None:
        task = self._task
        if task is None:
            raise RuntimeError("the inbox was not started")
        if task.done() and not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error

    async def next(self, channel: str, *, timeout: float) -> str:
        """The next message of ``channel``; fails after ``timeout`` seconds without one."""
        self._check_alive()
        queue = self._queue(channel)
        if not queue.empty():
            return queue.get_nowait()
        assert self._task is not None
        getter = asyncio.ensure_future(queue.get())
        try:
            done, _ = await asyncio.wait(
                {getter, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not getter.done():
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
        if getter in done:
            return getter.result()
        self._check_alive()
        raise AssertionError(f"no message arrived on channel {channel!r} within {timeout} s")

    async def take(self, channel: str, count: int, *, timeout: float) -> list[str]:
        """The next ``count`` messages of ``channel``, each within ``timeout`` of the last."""
        return [await self.next(channel, timeout=timeout) for _ in range(count)]

    async def expect_nothing(self, channel: str, *, seconds: float) -> None:
        """Fail if any message arrives on ``channel`` within ``seconds``."""
        self._check_alive()
        queue = self._queue(channel)
        if queue.empty():
            await asyncio.sleep(seconds)
            self._check_alive()
        if not queue.empty():
            raise AssertionError(
                f"channel {channel!r} delivered {queue.get_nowait()!r} when nothing was expected"
            )
