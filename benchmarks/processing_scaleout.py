"""A partitioned derived topic on 1 and 3 processes over Redis Streams and Kafka:
``python -m benchmarks.processing_scaleout [--broker redis|kafka|both]``.

The pipeline of ``benchmarks.processing``, a keyed tumbling count (1 s) over ``--keys`` pages
(1,000), declared with ``partitions=6`` (``benchmarks/servers/processing.py``) and run by 1,
then 3, uvicorn processes that share the partitions through the broker's own group machinery:
the Redis Streams consumer group on ``redis-stream://`` (the local Redis), a Kafka consumer
group per partition on ``kafka://`` (a private tansu broker per deployment, whose PID is
stopped afterwards). Two measurements per deployment:

- **throughput**: clicks are written straight into the source streams or topics (as another
  system feeding the broker would) as fast as this client can, and the run ends when every
  window's count is in the derived stream or topic; reported: input events per wall second,
  and the CPU seconds the server processes and the broker spent per input event;
- **latency**: clicks at a steady rate with the current time as event time; for each result
  that reaches an SSE subscriber, the time since the last click of its page and window was
  written (a window closes when the first click of the next second arrives: the watermark).

Figures depend on the machine; it is shared here, so runs are short by default.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
import uuid
from typing import Any, Protocol

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
#: Clicks one write sends to the broker at a time.
CHUNK = 2_000
#: Seconds without a new result after which a throughput run ends short of every window.
QUIET = 10.0

#: A click as the broker carries it: (channel, message).
Click = tuple[str, str]


def click(prefix: str, page: int, ts: float) -> Click:
    event = Event.create(f"/clicks/page-{page}", {"user": "u", "ts": ts})
    return f"{prefix}clicks.page-{page}", event.to_message()


async def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


class Broker(Protocol):
    """What a run needs of a broker: its URL, clicks in, results counted, its process."""

    name: str

    def url(self) -> str: ...
    def pid(self) -> int | None: ...
    async def prepare(self, channels: list[str]) -> None: ...
    async def write(self, clicks: list[Click]) -> None: ...
    async def results(self, channel: str) -> int: ...
    async def balanced(self, derived: str, processes: int) -> bool: ...
    async def close(self, prefix: str) -> None: ...


class RedisStreams:
    """The local Redis, shared with others: a run's keys are prefixed, and deleted after it."""

    name = "redis-stream://"

    def __init__(self) -> None:
        self.redis = Redis.from_url(REDIS)

    def url(self) -> str:
        return REDIS.replace("redis://", "redis-stream://") + "?maxlen=0"

    def pid(self) -> int | None:
        return redis_server_pid()

    async def prepare(self, channels: list[str]) -> None:
        pass  # a stream comes into being with its first entry

    async def write(self, clicks: list[Click]) -> None:
        for start in range(0, len(clicks), CHUNK):
            pipe = self.redis.pipeline(transaction=False)
            for stream, message in clicks[start : start + CHUNK]:
                pipe.xadd(stream, {"message": message})
            await pipe.execute()

    async def results(self, channel: str) -> int:
        return int(await self.redis.xlen(channel))

    async def balanced(self, derived: str, processes: int) -> bool:
        tokens = f"fastapi-streaming:partitions:{derived}:{PARTITIONS}"
        share = -(-PARTITIONS // processes)
        try:
            consumers = await self.redis.xinfo_consumers(tokens, GROUP)
        except Exception:
            return False
        held = sorted((c["pending"] for c in consumers), reverse=True)
        if sum(held) != PARTITIONS or held[0] > share:
            return False
        # and each partition has its first checkpoint, whose start skips what came before
        checkpoints = [
            f"fastapi-streaming:checkpoint:{derived}#partition-{n}-of-{PARTITIONS}"
            for n in range(PARTITIONS)
        ]
        return int(await self.redis.exists(*checkpoints)) == PARTITIONS

    async def close(self, prefix: str) -> None:
        for pattern in (f"{prefix}*", f"fastapi-streaming:*{prefix}*"):
            async for key in self.redis.scan_iter(match=pattern, count=1000):
                await self.redis.delete(key)
        await self.redis.aclose()


class Kafka:
    """A private tansu broker (memory storage) for one deployment, stopped by its PID after.

    Private, not shared between deployments: the checkpoints of every derived topic go to one
    topic, which a new owner reads through, so a run must not inherit the last one's.
    """

    name = "kafka:// (tansu)"

    def __init__(self) -> None:
        from fastapi_streaming.testing.private_brokers import private_tansu

        self._context = private_tansu()
        self.tansu = self._context.__enter__()
        self.address = self.tansu.url.removeprefix("kafka://")
        self._producer: Any = None
        self._admin: Any = None
        self._results: Any = None

    def url(self) -> str:
        return self.tansu.url

    def pid(self) -> int | None:
        return None if self.tansu.process is None else self.tansu.process.pid

    async def _clients(self) -> tuple[Any, Any]:
        from aiokafka import AIOKafkaProducer
        from aiokafka.admin import AIOKafkaAdminClient

        if self._producer is None:
            self._producer = AIOKafkaProducer(bootstrap_servers=self.address, linger_ms=5)
            self._admin = AIOKafkaAdminClient(bootstrap_servers=self.address)
            await self._producer.start()
            await self._admin.start()
        return self._producer, self._admin

    async def prepare(self, channels: list[str]) -> None:
        """Create the topics with one partition each, as ``kafka://`` creates its own: a
        topic tansu creates by itself, on a first write or metadata request, has four."""
        from aiokafka.admin import NewTopic

        from fastapi_streaming.processing.kafka_feed import CHECKPOINTS

        _, admin = await self._clients()
        compact = {"cleanup.policy": "compact"}
        await admin.create_topics([NewTopic(CHECKPOINTS, 1, 1, topic_configs=compact)])
        for start in range(0, len(channels), 100):
            await admin.create_topics([NewTopic(c, 1, 1) for c in channels[start : start + 100]])

    async def write(self, clicks: list[Click]) -> None:
        producer, _ = await self._clients()
        for start in range(0, len(clicks), CHUNK):
            sent = [
                await producer.send(topic, message.encode())
                for topic, message in clicks[start : start + CHUNK]
            ]
            await asyncio.gather(*sent)

    async def results(self, channel: str) -> int:
        """The derived topic's high watermark as a fetch reports it. Not ``end_offsets``:
        tansu 0.6.0 answers a ListOffsets request for the latest offset with the base offset
        of the last record batch plus one (10 records in one batch: 1, not 10)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        partition = TopicPartition(channel, 0)
        if self._results is None:
            self._results = AIOKafkaConsumer(
                bootstrap_servers=self.address, enable_auto_commit=False, fetch_max_wait_ms=50
            )
            await self._results.start()
            self._results.assign([partition])
            await self._results.seek_to_beginning(partition)
        await self._results.getmany(partition, timeout_ms=100)
        return int(self._results.highwater(partition) or 0)

    async def balanced(self, derived: str, processes: int) -> bool:
        """Every partition's group has an owner that wrote its first checkpoint (tansu does
        not describe groups to aiokafka: its answer does not decode), and every process had
        a few seconds to join the groups."""
        from fastapi_streaming.processing.kafka_feed import checkpoint_records

        names = {f"{derived}#partition-{n}-of-{PARTITIONS}".encode() for n in range(PARTITIONS)}
        try:
            async for key, _ in checkpoint_records(self.address):
                names.discard(key)
        except Exception:
            return False
        if names:
            return False
        await asyncio.sleep(2.0 * processes)  # the last process's groups settle
        return True

    async def close(self, prefix: str) -> None:
        for client in (self._producer, self._results):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()
        self._context.__exit__(None, None, None)


BROKERS = {"redis": RedisStreams, "kafka": Kafka}


class Deployment:
    """``processes`` servers of the processing app, sharing one run's channels."""

    def __init__(self, broker: str, processes: int) -> None:
        self.prefix = f"bench{uuid.uuid4().hex[:8]}."
        self.broker: Broker = BROKERS[broker]()
        env = {
            "BENCH_BROKER": self.broker.url(),
            "BENCH_PREFIX": self.prefix,
            "BENCH_PARTITIONS": str(PARTITIONS),
        }
        self.processes = processes
        self.servers = [
            ServerProcess("benchmarks.servers.processing:app", python=sys.executable, env=env)
            for _ in range(processes)
        ]
        self.derived = f"{self.prefix}clicks-per-second"

    async def __aenter__(self) -> Deployment:
        try:
            channels = [click(self.prefix, page, 0)[0] for page in range(KEYS)]
            await self.broker.prepare([*channels, self.derived])
            for server in self.servers:
                server.start()

            async def balanced() -> bool:
                return await self.broker.balanced(self.derived, self.processes)

            await until(balanced, 120, "the partitions to be shared")
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self.servers:
            server.stop()
        await self.broker.close(self.prefix)

    async def results(self) -> int:
        return await self.broker.results(self.derived)

    async def warm_up(self, second: float) -> int:
        """A click per page in ``second`` and, once every partition found the pages' streams
        (Redis Streams: they come into being with these clicks), in the next, until the first
        second is counted. Returns the number of results so far (those of ``second``)."""
        await self.broker.write([click(self.prefix, page, second + 0.5) for page in range(KEYS)])
        await asyncio.sleep(3.0)
        await self.broker.write([click(self.prefix, page, second + 1.5) for page in range(KEYS)])

        async def counted() -> bool:
            return await self.results() >= KEYS

        await until(counted, 120, "the warm-up second to be counted")
        return await self.results()


async def throughput(broker: str, processes: int, windows: int, per_window: int) -> dict[str, Any]:
    async with Deployment(broker, processes) as run:
        base = float(int(time.time()) - 10_000)
        before = await run.warm_up(base - 2)  # seconds base - 2 and base - 1
        entries = [
            click(run.prefix, page, base + second + (n + 1) / (per_window + 1))
            for second in range(windows + 1)  # the last second closes the one before
            for n in range(per_window)
            for page in range(KEYS)
        ]
        expected = before + windows * KEYS + KEYS  # and the second warm-up second's
        pids = [server.pid for server in run.servers]
        broker_pid = run.broker.pid()
        servers_cpu = CPUClock(pids)
        broker_cpu = CPUClock([broker_pid] if broker_pid else [])
        started = time.monotonic()
        await run.broker.write(entries)
        # Until every window's count is out, or none came for QUIET seconds (windows whose
        # every event came late are never emitted: the table says how many were).
        # CPU is read at the last new result, so that the quiet wait is not in it.
        last = (await run.results(), time.monotonic())
        cpu = (servers_cpu.seconds(), broker_cpu.seconds())
        while last[0] < expected and time.monotonic() - last[1] < QUIET:
            await asyncio.sleep(0.1)
            count = await run.results()
            if count != last[0]:
                last = (count, time.monotonic())
                cpu = (servers_cpu.seconds(), broker_cpu.seconds())
            if time.monotonic() - started > 600:
                raise RuntimeError(f"{count} of {expected} results after 600 s")
        wall = last[1] - started
        events = len(entries)
        return {
            "processes": processes,
            "windows": f"{last[0] - before:,}/{expected - before:,}",
            "events": events,
            "wall_s": wall,
            "events_per_s": events / wall,
            "server_cpu_us": cpu[0] / events * 1e6,
            "broker_cpu_us": cpu[1] / events * 1e6,
        }


async def latency(broker: str, processes: int, seconds: float, rate: int) -> dict[str, Any]:
    async with Deployment(broker, processes) as run:
        await run.warm_up(float(int(time.time())) - 3)
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
                await run.broker.write(batch)
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
    global KEYS
    KEYS = options.keys
    counts = [int(n) for n in options.processes.split(",")]
    brokers = ["redis", "kafka"] if options.broker == "both" else [options.broker]
    print(
        f"Keyed tumbling count (1 s), {KEYS:,} pages, {PARTITIONS} partitions;"
        f" throughput: {options.windows} s x {options.per_window} clicks per page; latency: "
        f"{options.rate:,} clicks/s for {options.seconds:g} s"
    )
    print()
    print(
        "| broker | processes | input events | windows out | wall s | events/s "
        "| server CPU µs/event | broker CPU µs/event | latency p50 ms | p99 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for broker in brokers:
        for processes in counts:
            row = await throughput(broker, processes, options.windows, options.per_window)
            lat = await latency(broker, processes, options.seconds, options.rate)
            print(
                f"| {BROKERS[broker].name} | {processes} | {row['events']:,} "
                f"| {row['windows']} | {row['wall_s']:.1f} | {row['events_per_s']:,.0f} "
                f"| {row['server_cpu_us']:.1f} | {row['broker_cpu_us']:.1f} "
                f"| {lat['p50_ms']:.0f} | {lat['p99_ms']:.0f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=["redis", "kafka", "both"], default="redis")
    parser.add_argument("--processes", default="1,3", help="deployments to measure")
    parser.add_argument("--keys", type=int, default=KEYS, help="pages (source channels)")
    parser.add_argument("--windows", type=int, default=20, help="seconds of event time")
    parser.add_argument("--per-window", type=int, default=5, help="clicks per page and second")
    parser.add_argument("--rate", type=int, default=5_000, help="clicks/s in the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
