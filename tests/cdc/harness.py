"""Run a streaming API with table topics in this process and read what reaches the broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from broadcaster import Event as BrokerMessage

from fastapi_streaming import StreamingAPI
from fastapi_streaming.runtime import StreamingRuntime


class BrokerInbox:
    """The CloudEvents documents that arrive on some channels, in order."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    def __call__(self, message: BrokerMessage) -> None:
        self.messages.append({"channel": message.channel, **json.loads(message.message)})
        self.arrived.set()

    async def wait_for(self, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        async def enough() -> None:
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.messages

    def data(self) -> list[dict[str, Any]]:
        return [message["data"] for message in self.messages]


@asynccontextmanager
async def capturing(
    streaming: StreamingAPI, channels: Iterable[str]
) -> AsyncIterator[tuple[StreamingRuntime, BrokerInbox]]:
    inbox = BrokerInbox()
    async with streaming.running() as runtime:
        for channel in channels:
            await runtime.broker.subscribe(channel, inbox)
        yield runtime, inbox


async def wait_until_capturing(streaming: StreamingAPI, timeout: float = 20) -> None:
    """Until every source holds its lease and streams (the slot exists from then on)."""

    async def ready() -> None:
        while not all(  # noqa: ASYNC110 - health is polled
            report["state"] == "capturing" and report.get("streaming")
            for report in streaming.producers.health().values()
        ):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(ready(), timeout)
