"""fastapi-streaming: one topic, the shape of the README, its broker from ``BENCH_BROKER``.

Routes (the library's wire contract): ``GET /streams/sse/bench/{room}``,
``WS /streams/ws/bench/{room}``, ``POST /streams/publish/bench/{room}``. Each run uses a fresh
room, so runs on a shared Redis never see each other's events.

``BENCH_MANAGED=1`` manages the API as the issue's cost target says: a plan on every
connection (each client its own principal, counted in ``BENCH_LIMITS_STORAGE``: memory or
Redis) and Prometheus metrics at ``/metrics``. The plan's limits are far above what a run
reaches, so it refuses nothing and only its counting costs.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

from fastapi import FastAPI
from starlette.requests import HTTPConnection

from fastapi_streaming import StreamingAPI

MANAGED = os.environ.get("BENCH_MANAGED") == "1"


def log_full_collections(path: str) -> None:
    started = 0.0

    def timed(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if info["generation"] != 2:
            return
        if phase == "start":
            started = time.perf_counter()
            return
        took = (time.perf_counter() - started) * 1000
        with open(path, "a") as log:
            log.write(f"{time.time():.3f} {took:.1f} {os.getpid()}\n")

    gc.callbacks.append(timed)


if os.environ.get("BENCH_GC_LOG"):
    log_full_collections(os.environ["BENCH_GC_LOG"])


def managed_options() -> dict[str, Any]:
    from fastapi_streaming.limits import Limits, Plan

    def each_client(principal: object, connection: HTTPConnection) -> str:
        """Every connection is a principal of its own: one counter each, as with real users."""
        client = connection.client
        return f"{client.host}:{client.port}" if client else "anonymous"

    plan = Plan(
        name="bench",
        quota="1000000000/day",
        max_duration=86_400,
        publish_rate="1000000/second",
        max_connections=10,
    )
    storage = os.environ.get("BENCH_LIMITS_STORAGE", "memory://")
    limits = Limits(plan=plan, storage=storage, key=each_client, namespace=f"bench-{os.getpid()}")
    return {"limits": limits, "metrics_url": "/metrics"}


app = FastAPI()
streaming = StreamingAPI(
    title="Bench",
    version="1",
    broker=os.environ.get("BENCH_BROKER", "memory://"),
    **(managed_options() if MANAGED else {}),
)


@streaming.subscribe("/bench/{room}")
@streaming.publish("/bench/{room}")
async def bench(event: dict[str, Any], room: str) -> dict[str, Any]:
    return event


streaming.init_app(app)
