"""What the capture throughput benchmarks share: one source captured into the broker, timed.

``benchmarks.cdc_postgres`` and ``benchmarks.cdc_mysql`` each make a table, a source and a
writer for their database and hand them to :func:`capture_throughput`, which runs capture (memory
broker, one process), starts the writer once the source streams, and measures from the first
commit to the last change the broker accepted: changes per second, and this process's CPU time
per change (the source's reading thread included).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from broadcaster import Event as BrokerMessage

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import Change, Source


async def capture_throughput(
    source: Source, write: Callable[[], None], rows: int
) -> dict[str, Any]:
    """Capture ``source`` while ``write`` (run in a thread) commits ``rows`` row changes."""
    streaming = StreamingAPI(broker="memory://")

    @streaming.changes("/bench", source=source)
    async def bench(change: Change) -> Change:
        return change

    received = 0
    done = asyncio.Event()

    def count(message: BrokerMessage) -> None:
        nonlocal received
        received += 1
        if received >= rows:
            done.set()

    async with streaming.running() as runtime:
        await runtime.broker.subscribe("bench", count)
        while not source.health()["streaming"]:  # noqa: ASYNC110 - polls the reading thread
            await asyncio.sleep(0.05)
        started, cpu = time.perf_counter(), time.process_time()
        writing = asyncio.create_task(asyncio.to_thread(write))
        await asyncio.wait_for(done.wait(), 300)
        await writing
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "changes": rows,
        "seconds": round(elapsed, 3),
        "changes_per_second": round(rows / elapsed),
        "cpu_us_per_change": round(cpu / rows * 1e6, 1),
    }
