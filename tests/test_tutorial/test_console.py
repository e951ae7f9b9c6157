"""The code of docs/console.md: docs_src/console/report.py (the app itself is served by the
tests in tests/console/)."""

from __future__ import annotations

from typing import Any

from docs_src.console.report import minutes_of, top_consumers
from fastapi_streaming import StreamingAPI
from fastapi_streaming.fanout import ClientQueue
from fastapi_streaming.owners import Owner


async def test_the_report_lists_who_used_the_api() -> None:
    streaming = StreamingAPI(console=False)

    @streaming.subscribe("/rooms/{room}")
    async def rooms(event: dict[str, Any], room: str) -> dict[str, Any]:
        return event

    async with streaming.running() as runtime:
        bob = ClientQueue(100, "sse")
        bob.owner = Owner("bob")
        await runtime.subscribe(bob, "/rooms/1")
        for n in range(4):
            await streaming.emit("/rooms/1", {"n": n})
        handed: list[Any] = []
        while len(handed) < 4:
            await bob.wait()
            handed += bob.take()
        top = await top_consumers(streaming)
        minutes = await minutes_of(streaming, "bob")
    assert top == [
        {"principal": "(server)", "plan": "none", "delivered": 0, "published": 4, "throttled": 0},
        {"principal": "bob", "plan": "none", "delivered": 4, "published": 0, "throttled": 0},
    ]
    assert sum(delivered for _, delivered, _ in minutes) == 4
