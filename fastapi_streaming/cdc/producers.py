"""The producers of a streaming API: what feeds topics from outside (database changes).

Producers start with the API's running context, after the broker connection, and stop before
it. Each gets only the callable that hands a message to the broker: they publish like any
other publisher, so what they make is an ordinary topic.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

logger = logging.getLogger("fastapi_streaming.cdc")


class Producer(Protocol):
    async def start(self, publish: Callable[[str, str], Awaitable[None]]) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> dict[str, Any]: ...


class Producers:
    """The producers declared on an API (or a router), started and stopped together."""

    def __init__(self) -> None:
        self.items: dict[str, Producer] = {}
        self._started: list[Producer] = []

    def add(self, name: str, producer: Producer) -> None:
        if name in self.items:
            raise ValueError(f"{name} is captured twice; declare each source once.")
        self.items[name] = producer

    def __len__(self) -> int:
        return len(self.items)

    async def start(self, publish: Callable[[str, str], Awaitable[None]]) -> None:
        """Start every producer; if one cannot start, stop those started and raise its error."""
        try:
            for producer in self.items.values():
                await producer.start(publish)
                self._started.append(producer)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        while self._started:
            producer = self._started.pop()
            try:
                await producer.stop()
            except Exception:
                logger.exception("A producer failed to stop cleanly")

    def health(self) -> dict[str, Any]:
        return {name: producer.health() for name, producer in self.items.items()}
