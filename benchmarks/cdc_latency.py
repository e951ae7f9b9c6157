"""End-to-end latency of change capture: commit in PostgreSQL -> event at an SSE client.

    python -m benchmarks.cdc_latency [--rate 1000] [--seconds 10] [--dsn ...]

Runs the change data capture tutorial (``docs_src/cdc/app.py``) under uvicorn on a database of
its own, opens an SSE stream of ``/tables/todos``, and commits one row per transaction at
``rate`` per second from a thread. Latency is from the moment the commit returned to the
moment the client parsed the event; prints p50, p99 and the maximum (milliseconds). Drops the
database (and the slot in it) afterwards. Not a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import httpx_sse
import psycopg2

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def execute(dsn: str, sql: str) -> None:
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    try:
        connection.cursor().execute(sql)
    finally:
        connection.close()


class Writer(threading.Thread):
    """Commits one todo per transaction at a steady rate; remembers when each commit returned."""

    def __init__(self, dsn: str, rate: float, seconds: float) -> None:
        super().__init__(daemon=True)
        self.dsn, self.rate, self.seconds = dsn, rate, seconds
        self.committed: dict[str, float] = {}

    def run(self) -> None:
        connection = psycopg2.connect(self.dsn)
        connection.autocommit = True
        cursor = connection.cursor()
        start = time.perf_counter()
        for n in range(int(self.rate * self.seconds)):
            due = start + n / self.rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            task = f"t{n}"
            cursor.execute("INSERT INTO todos (task) VALUES (%s)", (task,))
            self.committed[task] = time.perf_counter()
        connection.close()


@asynccontextmanager
async def measure_server(
    dsn: str, prepare: Callable[[str], None] | None = None
) -> AsyncIterator[tuple[str, str]]:
    """The tutorial app under uvicorn on a new database (``prepare(database)`` runs first),
    once it captures; yields its URL and the database's DSN, then drops it all."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    execute(dsn, f"CREATE DATABASE {name}")
    database = dsn.rsplit("/", 1)[0] + f"/{name}"
    if prepare is not None:
        prepare(database)
    port = free_port()
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
        [sys.executable, "-m", "uvicorn", "docs_src.cdc.app:app", "--port", str(port),
         "--log-level", "warning", "--loop", "uvloop", "--http", "httptools"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database},
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=None) as http:
            for _ in range(600):
                try:
                    health = (await http.get("/streams/health")).json()
                    (source,) = health["sources"].values()
                    if source["state"] == "capturing" and source["streaming"]:
                        break
                except (httpx.HTTPError, KeyError, ValueError):
                    pass
                await asyncio.sleep(0.1)
        yield base_url, database
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(20)
        for _ in range(50):
            connection = psycopg2.connect(database)
            cursor = connection.cursor()
            cursor.execute(
                "SELECT active_pid FROM pg_replication_slots WHERE database = %s", (name,)
            )
            pids = [row[0] for row in cursor.fetchall() if row[0] is not None]
            connection.close()
            if not pids:
                break
            await asyncio.sleep(0.1)
        execute(database, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                          f"WHERE database = '{name}'")  # fmt: skip
        execute(dsn, f"DROP DATABASE {name}")


async def measure(dsn: str, rate: float, seconds: float) -> dict[str, float]:
    received: dict[str, float] = {}
    async with (
        measure_server(dsn) as (base_url, database),
        httpx.AsyncClient(base_url=base_url, timeout=None) as http,
    ):
        writer = Writer(database, rate, seconds)
        total = int(rate * seconds)
        async with httpx_sse.aconnect_sse(http, "GET", "/streams/sse/tables/todos") as sse:
            writer.start()
            async for event in sse.aiter_sse():
                if not event.data:
                    continue
                arrived = time.perf_counter()
                received[json.loads(event.data)["after"]["task"]] = arrived
                if len(received) >= total:
                    break
        writer.join()
    latencies = sorted(
        (received[task] - committed) * 1000 for task, committed in writer.committed.items()
    )
    return {
        "changes": len(latencies),
        "rate_per_second": rate,
        "p50_ms": round(latencies[len(latencies) // 2], 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 2),
        "max_ms": round(latencies[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    options = parser.parse_args()
    print(asyncio.run(measure(options.dsn, options.rate, options.seconds)))


if __name__ == "__main__":
    main()
