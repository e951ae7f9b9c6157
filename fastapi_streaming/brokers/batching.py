"""Publishes of the same moment go to the broker together, in one round trip.

Requests that arrive together (pipelined POSTs, a burst of ``emit``) would otherwise each take a
connection and a round trip of their own, reach the broker one by one, and come back to every
subscribing process spread over as many reads, so each of them wakes every client's writer on
its own. Sent together, they cost one round trip and arrive together, and the fan-out delivers
them to each client in one batch and one write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

#: One publish waiting to go out: the channel, the message, and who waits for the outcome.
Outgoing = tuple[str, Any, "asyncio.Future[None]"]


class PublishBatcher:
    """Collects the publishes made before the event loop's next turn and sends them at once.

    ``send`` gets every publish collected (in order) and either returns (all were sent) or
    raises (none can be counted on: every publisher of the batch gets the error). A publisher
    that stops waiting does not stop the others' batch.
    """

    def __init__(self, send: Callable[[list[Outgoing]], Awaitable[None]]) -> None:
        self._send = send
        self._outbox: list[Outgoing] = []
        #: Batches being sent, by the task that sends each.
        self._sending: dict[asyncio.Task[None], list[Outgoing]] = {}

    async def publish(self, channel: str, message: Any) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._outbox.append((channel, message, future))
        if len(self._outbox) == 1:
            loop.call_soon(self._flush)
        await future

    def _flush(self) -> None:
        batch, self._outbox = self._outbox, []
        if batch:
            task = asyncio.create_task(self._run(batch), name="broker publish batch")
            self._sending[task] = batch
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        # Cancelled (the backend disconnects), maybe before its first step: what it did not
        # settle failed.
        _settle(self._sending.pop(task, []), _not_sent())

    async def _run(self, batch: list[Outgoing]) -> None:
        try:
            await self._send(batch)
        except Exception as exc:
            _settle(batch, exc)
        else:
            _settle(batch, None)

    async def close(self) -> None:
        """End every batch in flight; their publishers (and those still waiting) get an error."""
        waiting, self._outbox = self._outbox, []
        _settle(waiting, _not_sent())
        tasks = tuple(self._sending)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


def _not_sent() -> ConnectionError:
    return ConnectionError("the backend disconnected before the events were sent")


def _settle(batch: list[Outgoing], error: Exception | None) -> None:
    """Tell every publisher of ``batch`` still waiting how it went."""
    for *_, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
