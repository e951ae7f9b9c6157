"""Processing engines side by side: ``python -m benchmarks.processing_engines``.

One declaration, a keyed tumbling count (1 s windows by event time) over 1,000 keys, computed
by each engine that runs here:

- ``embedded, memory://``: the embedded engine's whole per-event path in one process (decode,
  validate, time, key, fold, publish each closed window), fed the broker messages directly;
- ``quix, kafka:// (tansu)``: the ``fastapi-streaming-quix`` plugin, when installed. The input
  is written to Kafka beforehand; the engine then reads it as a new owner would (group join,
  state stores, a repartition topic for the key, changelog topics), and the run is timed from
  the first event it reads to the last window result the embedded engine also emits (both
  leave each key's last window open). Its CPU is this process's (where Quix runs, in a
  thread) plus the broker's, since the repartition and changelog traffic goes through it.

The source is one topic, ``/clicks``, keyed by its ``page`` field, so the Kafka run reads one
Kafka topic (fastapi-streaming writes each concrete address to a topic of its own, and 1,000
Kafka topics would measure topic discovery, not processing). The machine is shared: runs are
short by default, and the figures are what one loaded machine gave, not a capacity plan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any

from broadcaster import Event as BrokerMessage
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI
from fastapi_streaming.events import Event
from fastapi_streaming.processing import Tumbling, Window

KEYS = 1_000
#: Input events per second of event time: 10 per key per second.
RATE = 10_000


class Click(BaseModel):
    page: str
    ts: float


def clicks_api(broker: str, engine: str, channel: str) -> StreamingAPI:
    streaming = StreamingAPI(broker=broker, processing_engine=engine)

    @streaming.publish("/clicks", channel=channel)
    async def clicks(event: Click) -> Click:
        return event

    @streaming.derive(
        "/clicks/per-second",
        source="/clicks",
        channel=channel + ".per-second",
        window=Tumbling(seconds=1),
        time="ts",
        key="page",
        idle=None,
    )
    def per_second(window: Window[int], page: str) -> dict[str, Any]:
        return {"page": page, "start": window.start, "count": window.value}

    return streaming


def messages(count: int) -> list[str]:
    """The broker messages of ``count`` clicks, as fastapi-streaming writes them."""
    return [
        Event.create("/clicks", None).to_message(
            json.dumps({"page": f"page-{n % KEYS}", "ts": 1_000 + n / RATE}).encode()
        )
        for n in range(count)
    ]


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of another process."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_embedded(count: int) -> dict[str, Any]:
    streaming = clicks_api("memory://", "embedded", "bench.clicks")
    prepared = [BrokerMessage(channel="bench.clicks", message=text) for text in messages(count)]
    async with streaming.running():
        processing: Any = streaming.processing
        (pipeline,) = processing.pipelines.values()
        await pipeline.stop()  # fed directly below: no ticks, no inbox in the way
        start_wall, start_cpu = time.monotonic(), time.process_time()
        for message in prepared:
            await pipeline.process(0, message)
        wall, cpu = time.monotonic() - start_wall, time.process_time() - start_cpu
    return {
        "engine": "embedded, memory://",
        "events": count,
        "results": pipeline.stats.published,
        "startup_s": 0.0,
        "wall_s": wall,
        "cpu_s": cpu,
        "broker_cpu_s": 0.0,
    }


async def bench_quix(count: int, expected: int) -> dict[str, Any] | None:
    try:
        import fastapi_streaming_quix  # noqa: F401
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic
    except ImportError:
        return None
    from fastapi_streaming.testing.private_brokers import private_tansu

    with private_tansu() as tansu:
        address = tansu.url.removeprefix("kafka://")
        assert tansu.process is not None
        tansu_pid = tansu.process.pid
        channel = f"bench-{uuid.uuid4().hex[:8]}.clicks"
        # One partition, as fastapi-streaming's kafka:// backend creates its topics: the
        # events of a key stay in order (a topic tansu creates by itself has four).
        admin = AdminClient({"bootstrap.servers": address})
        admin.create_topics([NewTopic(channel, 1, 1)])[channel].result(30)
        producer = Producer({"bootstrap.servers": address, "linger.ms": 20})
        for text in messages(count):
            producer.produce(channel, text.encode())
            producer.poll(0)
        producer.flush(60)
        streaming = clicks_api(tansu.url, "quix", channel)
        began = time.monotonic()
        async with streaming.running():
            engine: Any = streaming.processing
            (runner,) = engine.runners
            while runner.flow is None or runner.flow.stats.received == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            start_wall, start_cpu = time.monotonic(), time.process_time()
            start_broker = cpu_of(tansu_pid)
            startup = start_wall - began
            # Until every closed window's result is out (it goes through the repartition topic).
            deadline = time.monotonic() + 300
            while runner.flow.stats.published < expected:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"quix: {runner.flow.stats} after 300 s")
                await asyncio.sleep(0.01)
            wall, cpu = time.monotonic() - start_wall, time.process_time() - start_cpu
            broker_cpu = cpu_of(tansu_pid) - start_broker
            results = runner.flow.stats.published
    return {
        "engine": "quix, kafka:// (tansu)",
        "events": count,
        "results": results,
        "startup_s": startup,
        "wall_s": wall,
        "cpu_s": cpu,
        "broker_cpu_s": broker_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="input events per engine")
    options = parser.parse_args()
    rows = [asyncio.run(bench_embedded(options.events))]
    quix = asyncio.run(bench_quix(options.events, rows[0]["results"]))
    if quix is None:
        print("(quix: not installed: pip install ./plugins/fastapi-streaming-quix)")
    else:
        rows.append(quix)
    print(
        f"Keyed tumbling count (1 s windows by event time), {KEYS:,} keys, "
        f"{options.events:,} events per engine"
    )
    print()
    print(
        "| engine | input events | results | start to first event s | wall s | events/s "
        "| CPU s (engine + broker) | events per CPU s | CPU µs per event |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        cpu = row["cpu_s"] + row["broker_cpu_s"]
        print(
            f"| {row['engine']} | {row['events']:,} | {row['results']:,} "
            f"| {row['startup_s']:.1f} | {row['wall_s']:.2f} "
            f"| {row['events'] / row['wall_s']:,.0f} "
            f"| {row['cpu_s']:.2f} + {row['broker_cpu_s']:.2f} "
            f"| {row['events'] / cpu:,.0f} | {cpu / row['events'] * 1e6:,.1f} |"
        )


if __name__ == "__main__":
    main()
