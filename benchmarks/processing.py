"""The embedded stream-processing engine: ``python -m benchmarks.processing``.

A keyed tumbling count over 1,000 keys (one key per page, as in the clicks tutorial), measured
two ways in one process on ``memory://``:

- ``engine``: :class:`~fastapi_streaming.processing.engine.WindowEngine` alone (windowing and
  aggregation, what a faster front end could reach);
- ``pipeline``: a derived topic's whole per-event path: decode the broker message, validate it
  against the source's payload, read its event time and key, fold it in, and publish each
  closed window's result to the broker.

Events/s are per core: input events divided by the CPU seconds the process used. Memory is the
process's RSS and the live Python allocations at the start and at the end of the run; with
state bounded by keys x open windows, the two stay level however long it runs. The machine is
shared, so runs are short by default (``--duration``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import tracemalloc
from typing import Any

from broadcaster import Event as BrokerMessage
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI
from fastapi_streaming.events import Event
from fastapi_streaming.processing import Count, Tumbling, Window
from fastapi_streaming.processing.engine import WindowEngine

KEYS = 1_000
#: Input events per second of event time: 100 per key per second.
RATE = 100_000


class Click(BaseModel):
    user: str
    ts: float


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def bench_engine(duration: float, samples: int = 10) -> dict[str, Any]:
    """Run the engine alone for ``duration`` seconds, taking the RSS ``samples`` times."""
    engine = WindowEngine(Tumbling(seconds=1), Count())
    keys = [(f"page-{i}",) for i in range(KEYS)]
    event = {"user": "u"}
    sent = emitted = 0
    start_cpu, start_rss = time.process_time(), rss_mib()
    start_py = tracemalloc.get_traced_memory()[0]
    began = time.monotonic()
    deadline = began + duration
    every = duration / samples
    next_sample = began + every
    rss_samples: list[tuple[float, float]] = []
    while (now := time.monotonic()) < deadline:
        if now >= next_sample:
            rss_samples.append((now - began, rss_mib()))
            next_sample += every
        for _ in range(100):
            for key in keys:
                emitted += len(engine.add(key, sent / RATE, event))
                sent += 1
    cpu = time.process_time() - start_cpu
    row = _row("engine", sent, emitted, cpu, start_rss, start_py, engine.open_windows)
    row["rss_samples"] = [*rss_samples, (time.monotonic() - began, row["rss_end_mib"])]
    return row


async def bench_pipeline(duration: float, events_seconds: float) -> dict[str, Any]:
    streaming = StreamingAPI(broker="memory://")

    @streaming.publish("/clicks/{page}")
    async def click(event: Click, page: str) -> Click:
        return event

    @streaming.derive(
        "/clicks/{page}/per-second",
        source="/clicks/{page}",
        window=Tumbling(seconds=1),
        time="ts",
        idle=None,
    )
    def per_second(window: Window[int], page: str) -> dict[str, Any]:
        return {"page": page, "start": window.start, "end": window.end, "count": window.value}

    async with streaming.running():
        assert streaming.processing is not None
        (pipeline,) = streaming.processing.pipelines.values()
        await pipeline.stop()  # fed directly below: no ticks, no inbox in the way
        # What the broker would deliver, made beforehand: publishing is not the pipeline's cost.
        messages = [
            BrokerMessage(
                channel=f"clicks.page-{n % KEYS}",
                message=Event.create("", None).to_message(
                    json.dumps({"user": "u", "ts": n / RATE}).encode()
                ),
            )
            for n in range(int(RATE * events_seconds))
        ]
        sent = 0
        start_cpu, start_rss = time.process_time(), rss_mib()
        start_py = tracemalloc.get_traced_memory()[0]
        deadline = time.monotonic() + duration
        for message in messages:
            await pipeline.process(0, message)
            sent += 1
            if sent % 10_000 == 0 and time.monotonic() > deadline:
                break
        cpu = time.process_time() - start_cpu
        assert pipeline.engine is not None
        return _row(
            "pipeline",
            sent,
            pipeline.stats.published,
            cpu,
            start_rss,
            start_py,
            pipeline.engine.open_windows,
        )


def _row(
    name: str, sent: int, emitted: int, cpu: float, start_rss: float, start_py: int, windows: int
) -> dict[str, Any]:
    return {
        "run": name,
        "events": sent,
        "results": emitted,
        "cpu_s": cpu,
        "events_per_core_s": sent / cpu if cpu else float("nan"),
        "rss_start_mib": start_rss,
        "rss_end_mib": rss_mib(),
        "py_start_mib": start_py / 2**20,
        "py_end_mib": tracemalloc.get_traced_memory()[0] / 2**20,
        "open_windows": windows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="run the engine this many minutes instead (memory over a long run)",
    )
    parser.add_argument(
        "--event-seconds",
        type=float,
        default=3.0,
        help="seconds of event time prepared for the pipeline run (100,000 events each)",
    )
    parser.add_argument(
        "--tracemalloc", action="store_true", help="count live Python allocations (slower)"
    )
    options = parser.parse_args()
    if options.tracemalloc:
        tracemalloc.start()
    engine_seconds = options.minutes * 60 if options.minutes else options.duration
    rows = [
        bench_engine(engine_seconds),
        asyncio.run(bench_pipeline(options.duration, options.event_seconds)),
    ]
    print(
        f"Keyed tumbling count (1 s windows), {KEYS:,} keys; engine {engine_seconds:g} s, "
        f"pipeline {options.duration:g} s"
    )
    print()
    print(
        "| run | input events | results | CPU s | events/s per core | RSS start -> end MiB "
        "| Python heap start -> end MiB | open windows |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        heap = (
            f"{row['py_start_mib']:.1f} -> {row['py_end_mib']:.1f}" if options.tracemalloc else "-"
        )
        print(
            f"| {row['run']} | {row['events']:,} | {row['results']:,} | {row['cpu_s']:.2f} "
            f"| {row['events_per_core_s']:,.0f} "
            f"| {row['rss_start_mib']:.1f} -> {row['rss_end_mib']:.1f} | {heap} "
            f"| {row['open_windows']:,} |"
        )
    print()
    print(
        "Engine RSS over the run (MiB): "
        + ", ".join(f"{at / 60:.1f} min {rss:.1f}" for at, rss in rows[0]["rss_samples"])
    )


if __name__ == "__main__":
    main()
