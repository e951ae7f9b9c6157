"""A partitioned derived topic on 1 and 3 processes over Redis Streams:
``python -m benchmarks.processing_scaleout``.

The pipeline of ``benchmarks.processing``, a keyed tumbling count (1 s) over 1,000 pages,
declared with ``partitions=6`` (``benchmarks/servers/processing.py``) and run by 1, then 3,
uvicorn processes that share the partitions through the Redis Streams consumer group. Two
measurements per deployment:

- **throughput**: clicks are written straight into the source streams (as another system
  feeding the broker would) as fast as this client can, and the run ends when every window's
  count is in the derived stream; reported: input events per wall second, and the CPU seconds
  the server processes and Redis spent per input event;
- **latency**: clicks at a steady rate with the current time as event time; for each result
  that reaches an SSE subscriber, the time since the last click of its page and window was
  written (a window closes when the first click of the next second arrives: the watermark).

Figures depend on the machine; it is shared here, so runs are short by default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from typing import Any

import httpx
import httpx_sse
from redis.asyncio import Redis

from benchmarks.processes import CPUClock, ServerProcess, redis_server_pid
from fastapi_streaming.events import Event
from fastapi_streaming.processing.partitions import GROUP

REDIS = "redis://127.0.0.1:6379"
KEYS = 1_000
PARTITIONS = 6
ADDRESS = "/streams/sse/clicks/per-second"


def click(prefix: str, page: int, ts: float) -> tuple[str, dict[str, str]]:
    event = Event.create(f"/clicks/page-{page}", {"user": "u", "ts": ts})
    return f"{prefix}clicks.page-{page}", {"message": event.to_message()}


async def write(redis: Redis, entries: list[tuple[str, dict[str, str]]]) -> None:
    for start in range(0, len(entries), 2_000):
        pipe = redis.pipeline(transaction=False)
        for stream, fields in entries[start : start + 2_000]:
            pipe.xadd(stream, fields)  # type: ignore[arg-type]
        await pipe.execute()


async def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


class Deployment:
    """``processes`` servers of the processing app, sharing one run's channels."""

    def __init__(self, processes: int) -> None:
        self.prefix = f"bench{uuid.uuid4().hex[:8]}."
        env = {
            "BENCH_BROKER": REDIS.replace("redis://", "redis-stream://") + "?maxlen=0",
            "BENCH_PREFIX": self.prefix,
            "BENCH_PARTITIONS": str(PARTITIONS),
        }
        self.servers = [
            ServerProcess("benchmarks.servers.processing:app", python=sys.executable, env=env)
            for _ in range(processes)
        ]
        self.redis = Redis.from_url(REDIS)
        self.derived = f"{self.prefix}clicks-per-second"

    async def __aenter__(self) -> Deployment:
        for server in self.servers:
            server.start()
        tokens = f"fastapi-streaming:partitions:{self.derived}:{PARTITIONS}"
        share = -(-PARTITIONS // len(self.servers))

        async def balanced() -> bool:
            try:
                consumers = await self.redis.xinfo_consumers(tokens, GROUP)
            except Exception:
                return False
            held = sorted((c["pending"] for c in consumers), reverse=True)
            return sum(held) == PARTITIONS and held[0] <= share

        await until(balanced, 60, "the partitions to be shared")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self.servers:
            server.stop()
        for pattern in (f"{self.prefix}*", f"fastapi-streaming:*{self.prefix}*"):
            async for key in self.redis.scan_iter(match=pattern, count=1000):
                await self.redis.delete(key)
        await self.redis.aclose()

    async def warm_up(self, second: float) -> None:
        """One click per page, then time for every partition to find the 1,000 streams."""
        await write(self.redis, [click(self.prefix, page, second) for page in range(KEYS)])
        await asyncio.sleep(3.0)


async def throughput(processes: int, windows: int, per_window: int) -> dict[str, Any]:
    async with Deployment(processes) as run:
        base = float(int(time.time()) - 10_000)
        await run.warm_up(base + 0.5)
        entries = [
            click(run.prefix, page, base + second + (n + 1) / (per_window + 1))
            for second in range(1, windows + 2)  # the last second closes the one before
            for n in range(per_window)
            for page in range(KEYS)
        ]
        expected = windows * KEYS + KEYS  # and the warm-up second
        pids = [server.pid for server in run.servers]
        redis_pid = redis_server_pid()
        servers_cpu = CPUClock(pids)
        redis_cpu = CPUClock([redis_pid] if redis_pid else [])
        started = time.monotonic()
        await write(run.redis, entries)

        async def done() -> bool:
            return int(await run.redis.xlen(run.derived)) >= expected

        await until(done, 600, "every window's count")
        wall = time.monotonic() - started
        events = len(entries)
        return {
            "processes": processes,
            "events": events,
            "wall_s": wall,
            "events_per_s": events / wall,
            "server_cpu_us": servers_cpu.seconds() / events * 1e6,
            "redis_cpu_us": redis_cpu.seconds() / events * 1e6,
        }


async def latency(processes: int, seconds: float, rate: int) -> dict[str, Any]:
    async with Deployment(processes) as run:
        await run.warm_up(time.time())
        last_write: dict[tuple[str, float], float] = {}
        latencies: list[float] = []
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{run.servers[0].port}", timeout=None
        ) as http:

            async def subscribe(ready: asyncio.Event) -> None:
                async with httpx_sse.aconnect_sse(http, "GET", ADDRESS) as source:
                    ready.set()
                    async for event in source.aiter_sse():
                        if not event.data:
                            continue
                        data = json.loads(event.data)
                        written = last_write.get((data["page"], data["start"]))
                        if written is not None:
                            latencies.append(time.monotonic() - written)

            ready = asyncio.Event()
            reader = asyncio.create_task(subscribe(ready))
            await ready.wait()
            tick, page = 0.01, 0
            per_tick = max(rate * tick, 1)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                batch = []
                for _ in range(int(per_tick)):
                    now = time.time()
                    batch.append(click(run.prefix, page, now))
                    last_write[(f"page-{page}", float(int(now)))] = time.monotonic()
                    page = (page + 1) % KEYS
                await write(run.redis, batch)
                await asyncio.sleep(tick)
            await asyncio.sleep(3.0)  # the last windows close on the next second's clicks
            reader.cancel()
        latencies.sort()
        return {
            "processes": processes,
            "results": len(latencies),
            "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan"),
        }


async def main_async(options: argparse.Namespace) -> None:
    counts = [int(n) for n in options.processes.split(",")]
    print(
        f"Keyed tumbling count (1 s), {KEYS:,} pages, {PARTITIONS} partitions, redis-stream://;"
        f" throughput: {options.windows} s x {options.per_window} clicks per page; latency: "
        f"{options.rate:,} clicks/s for {options.seconds:g} s"
    )
    print()
    print(
        "| processes | input events | wall s | events/s | server CPU µs/event "
        "| Redis CPU µs/event | latency p50 ms | p99 ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for processes in counts:
        row = await throughput(processes, options.windows, options.per_window)
        lat = await latency(processes, options.seconds, options.rate)
        print(
            f"| {processes} | {row['events']:,} | {row['wall_s']:.1f} "
            f"| {row['events_per_s']:,.0f} | {row['server_cpu_us']:.1f} "
            f"| {row['redis_cpu_us']:.1f} | {lat['p50_ms']:.0f} | {lat['p99_ms']:.0f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,3", help="deployments to measure")
    parser.add_argument("--windows", type=int, default=20, help="seconds of event time")
    parser.add_argument("--per-window", type=int, default=5, help="clicks per page and second")
    parser.add_argument("--rate", type=int, default=5_000, help="clicks/s in the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
