"""How many turns of the event loop an HTTP publish takes, with and without a plan.

Run: ``.venv/bin/python -m benchmarks.publish_turns`` (needs Redis on 127.0.0.1:6379).

On a busy server a turn of the event loop is long: it writes to every client with events
waiting. So what a publish under a plan adds to the fan-out is first the turns it waits for its
charge: they delay the publish, and publishes that arrive together but reach the broker apart
are fanned out apart, a write per event to every client instead of one for all of them. This
counts, in one process and on the asyncio loop (uvloop cannot be counted; the awaits are the
same), the turns the benchmark's app (``benchmarks/servers/streaming.py``) takes per ``POST``,
on one connection and on four pipelined ones as the cost benchmark's publisher has, and how
many of those four publishes finish together. Unlike CPU figures on a shared machine, these
counts do not depend on the load.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import uvicorn

#: (label, environment of the app): the cost benchmark's four servers.
CONFIGS = [
    ("memory://", {"BENCH_BROKER": "memory://"}),
    ("memory:// + plan + metrics", {"BENCH_BROKER": "memory://", "BENCH_MANAGED": "1"}),
    ("redis://", {"BENCH_BROKER": "redis://127.0.0.1:6379"}),
    (
        "redis:// + plan (Redis counters) + metrics",
        {
            "BENCH_BROKER": "redis://127.0.0.1:6379",
            "BENCH_MANAGED": "1",
            "BENCH_LIMITS_STORAGE": "redis://127.0.0.1:6379/0",
        },
    ),
]
BODY = json.dumps({"seq": 1, "pad": "x" * 160}).encode()
REQUEST = (
    "POST /streams/publish/bench/turns HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
).encode() + BODY


class TurnCounter:
    """Counts the turns (``_run_once``) of asyncio's event loop while installed."""

    def __init__(self) -> None:
        self.turns = 0
        self._original: Callable[[Any], None] | None = None

    def __enter__(self) -> TurnCounter:
        loop_class: Any = asyncio.base_events.BaseEventLoop
        original = self._original = loop_class._run_once

        def run_once(loop: Any) -> None:
            self.turns += 1
            original(loop)

        loop_class._run_once = run_once
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.base_events.BaseEventLoop._run_once = self._original  # type: ignore[attr-defined]


async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 202"):
        raise RuntimeError(f"publish refused: {head[:60]!r}")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)


async def measure(counter: TurnCounter) -> tuple[float, float, float]:
    """Turns per POST on one connection; on four (each POSTing when answered); POSTs that
    finished in the same turn, on average, with four."""
    app = importlib.import_module("benchmarks.servers.streaming").app
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, loop="asyncio", http="httptools", log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn sets a plain flag, no event
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        single = []
        for _ in range(60):
            before = counter.turns
            await post(reader, writer)
            single.append(counter.turns - before)
        writer.close()
        finished: list[int] = []

        async def client() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(200):
                await post(reader, writer)
                finished.append(counter.turns)
            writer.close()

        before = counter.turns
        await asyncio.gather(*(client() for _ in range(4)))
        turns = counter.turns - before
    finally:
        server.should_exit = True
        await serving
    return statistics.median(single[10:]), turns / len(finished), len(finished) / len(set(finished))


def run(label: str, env: dict[str, str]) -> tuple[float, float, float]:
    """One configuration, in a process of its own (the app reads its environment on import)."""
    code = (
        "import asyncio, json\n"
        "from benchmarks.publish_turns import TurnCounter, measure\n"
        "with TurnCounter() as counter:\n"
        "    print(json.dumps(asyncio.run(measure(counter))))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": root, **env},
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{label}: {done.stderr[-2000:]}")
    single, four, together = json.loads(done.stdout.strip().splitlines()[-1])
    return single, four, together


def main() -> None:
    print("| server | turns per POST, one connection | turns per POST, four | POSTs together |")
    print("| --- | ---: | ---: | ---: |")
    for label, env in CONFIGS:
        single, four, together = run(label, env)
        print(f"| {label} | {single:.0f} | {four:.2f} | {together:.2f} |")


if __name__ == "__main__":
    main()
