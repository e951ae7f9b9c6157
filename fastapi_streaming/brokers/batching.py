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
        self._sending: set[asyncio.Task[None]] = set()

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
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _run(self, batch: list[Outgoing]) -> None:
        error: BaseException | None = None
        try:
            await self._send(batch)
        except asyncio.CancelledError:
            error = ConnectionError("the backend disconnected before the events were sent")
            raise
        except Exception as exc:
            error = exc
        finally:
            for *_, future in batch:
                if future.done():
                    continue
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    async def close(self) -> None:
        """End every batch in flight; their publishers (and those still waiting) get an error."""
        for task in tuple(self._sending):
            task.cancel()
        self._flush()
        for task in tuple(self._sending):
            task.cancel()
        if self._sending:
            await asyncio.wait(tuple(self._sending))
