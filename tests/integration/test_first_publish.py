"""The first event a server publishes costs what every later one does.

Libraries often load parts of themselves on first use. On a server that is hundreds of
milliseconds of imports inside the first publish, with the event loop stopped for every client
(found in the benchmarks: the first HTTP publish on ``redis://`` held every stream for 60 to
260 ms while anyio loaded its asyncio backend). Whatever the publish path needs is loaded when
the API starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FIRST_PUBLISH = """
import asyncio, sys
from fastapi import FastAPI
from fastapi_streaming import StreamingAPI

streaming = StreamingAPI(title="first", version="1", broker=sys.argv[1])

@streaming.publish("/rooms/{room}")
@streaming.subscribe("/rooms/{room}")
async def rooms(event: dict, room: str) -> dict:
    return event

streaming.init_app(FastAPI())

async def main() -> None:
    async with streaming.running() as runtime:
        before = set(sys.modules)
        await runtime.publish("/rooms/a", json_data=b'{"text": "hi"}', via="http")
        await streaming.emit("/rooms/a", {"text": "hi"})
        print(sorted(set(sys.modules) - before))

asyncio.run(main())
"""


@pytest.mark.parametrize(
    "broker", ["memory://", pytest.param("redis://127.0.0.1:6379", marks=pytest.mark.redis)]
)
def test_the_first_publish_imports_nothing(broker: str) -> None:
    ran = subprocess.run(
        [sys.executable, "-c", FIRST_PUBLISH, broker],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[]"
