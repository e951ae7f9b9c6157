"""A private redis-server as the conformance suite's :class:`BrokerControl`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.brokers import RedisProcess


class RedisControl:
    """Stops and starts a :class:`RedisProcess` by its PID; the URL carries the backend's scheme."""

    def __init__(self, process: RedisProcess, scheme: str) -> None:
        self.process = process
        self.url = f"{scheme}://127.0.0.1:{process.port}"

    async def stop(self) -> None:
        await asyncio.to_thread(self.process.stop)

    async def kill(self) -> None:
        await asyncio.to_thread(self.process.stop, kill=True)

    async def start(self) -> None:
        await asyncio.to_thread(self.process.start)


@contextmanager
def private_redis(scheme: str) -> Iterator[RedisControl]:
    process = RedisProcess().start()
    try:
        yield RedisControl(process, scheme)
    finally:
        process.stop()
