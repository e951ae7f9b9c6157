"""A new client's snapshot of a table: how soon its first row arrives and how fast the rows come.

    python -m benchmarks.cdc_snapshot [--rows 100000] [--clients 3] [--rate 200] [--dsn ...]

Runs the change data capture tutorial (``docs_src/cdc/app.py``) under uvicorn on a database of
its own whose ``todos`` table holds ``rows`` rows, and while a thread commits ``rate`` single-row
transactions per second, opens ``clients`` SSE streams one after the other with
``?snapshot=true``. For each: milliseconds to the first row, to the last snapshot row, rows per
second, and how many live changes followed before the stream was closed. Prints a table. Drops
the database (and the slot in it) afterwards. Not a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time

import httpx
import httpx_sse
import psycopg2

from .cdc_latency import execute, measure_server


class Writer(threading.Thread):
    """Commits one todo per transaction at a steady rate until stopped."""

    def __init__(self, dsn: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.dsn, self.rate = dsn, rate
        self.stop_event = threading.Event()

    def run(self) -> None:
        if self.rate <= 0:
            return
        connection = psycopg2.connect(self.dsn)
        connection.autocommit = True
        cursor = connection.cursor()
        start, n = time.perf_counter(), 0
        while not self.stop_event.is_set():
            delay = start + n / self.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            cursor.execute("INSERT INTO todos (task) VALUES ('live')")
            n += 1
        connection.close()


async def one_client(http: httpx.AsyncClient, rows: int, live_wanted: int) -> dict[str, float]:
    started = time.perf_counter()
    first = last = 0.0
    snapshot = live = 0
    async with httpx_sse.aconnect_sse(
        http, "GET", "/streams/sse/tables/todos?snapshot=true"
    ) as sse:
        async for event in sse.aiter_sse():
            if not event.data:
                continue
            op = json.loads(event.data)["op"]
            now = time.perf_counter()
            if op == "r":
                snapshot += 1
                first = first or now
                last = now
            else:
                live += 1
            if snapshot >= rows and live >= live_wanted:
                break
    return {
        "first_row_ms": round((first - started) * 1000, 1),
        "last_row_ms": round((last - started) * 1000, 1),
        "rows_per_s": round(snapshot / (last - started)),
        "snapshot_rows": snapshot,
        "live_after": live,
    }


async def measure(dsn: str, rows: int, clients: int, rate: float) -> list[dict[str, float]]:
    def prepare(database: str) -> None:
        execute(
            database,
            "CREATE TABLE todos (id serial PRIMARY KEY, task text NOT NULL, "
            "done boolean NOT NULL DEFAULT false); "
            f"INSERT INTO todos (task) SELECT 'todo ' || g FROM generate_series(1, {rows}) g",
        )

    results = []
    async with measure_server(dsn, prepare) as (base_url, database):
        writer = Writer(database, rate)
        writer.start()
        try:
            async with httpx.AsyncClient(base_url=base_url, timeout=None) as http:
                for _ in range(clients):
                    results.append(await one_client(http, rows, 10 if rate > 0 else 0))
        finally:
            writer.stop_event.set()
            writer.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200)
    options = parser.parse_args()
    results = asyncio.run(measure(options.dsn, options.rows, options.clients, options.rate))
    columns = list(results[0])
    print(" | ".join(["client", *columns]))
    for number, result in enumerate(results, 1):
        print(" | ".join([str(number), *(str(result[column]) for column in columns)]))


if __name__ == "__main__":
    main()
