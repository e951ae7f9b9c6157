"""Where the memory of an idle SSE connection goes: ``python -m benchmarks.memory``.

RSS says how much each connection costs; this says who allocated it. Each server runs under
uvicorn (uvloop, httptools) in a child process with ``tracemalloc`` on, a second child opens N
SSE connections and holds them, and the server compares its allocations and garbage-collected
objects before and after, grouped by the layer that made them. Run on the bound, the bound's
endpoints inside FastAPI and fastapi-streaming, it shows how much of a connection's memory is
the server's, the framework's and the library's own.

It also times a full garbage collection with the connections open: under load, every event
waits out such a pause when one runs, so it sets the latency tail.

Python allocations only: RSS adds the allocator's slack and uvloop's own buffers on top.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import importlib
import json
import os
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from .processes import ROOT, free_port, raise_open_files_limit
from .scenarios import BARE, FASTAPI_FLOOR, STREAMING_MEMORY, Server

SERVERS = {server.key: server for server in (BARE, FASTAPI_FLOOR, STREAMING_MEMORY)}

#: Which layer a file belongs to, by the first of these fragments its path contains.
LAYERS = [
    ("fastapi_streaming", "fastapi-streaming"),
    ("/uvicorn/", "uvicorn"),
    ("/uvloop/", "uvicorn"),
    ("/httptools/", "uvicorn"),
    ("/fastapi/", "FastAPI + Starlette"),
    ("/starlette/", "FastAPI + Starlette"),
    ("/anyio/", "FastAPI + Starlette"),
    ("/benchmarks/servers/", "benchmark app"),
    ("/asyncio/", "asyncio (tasks, events, futures)"),
]


def layer(filename: str) -> str:
    for fragment, name in LAYERS:
        if fragment in filename:
            return name
    return "other"


async def hold_connections(port: int, path: str, count: int) -> None:
    """Open ``count`` event streams, print ``ready`` once all are open, then keep them."""
    streams = []
    request = f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n\r\n"
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request.encode())
        streams.append((reader, writer))
    for reader, _ in streams:
        await reader.readuntil(b"\r\n\r\n")
    print("ready", flush=True)
    await asyncio.sleep(3600)


def open_clients(port: int, path: str, count: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "benchmarks.memory", "--hold", str(port), path, str(count)]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        child.kill()
        raise RuntimeError("the client could not open its connections")
    return child


def full_collection_ms() -> float:
    """How long a full garbage collection takes now: the pause every event waits out when one
    runs under load (the fastest of three, to leave out the machine's noise)."""
    pauses = []
    for _ in range(3):
        started = time.perf_counter()
        gc.collect()
        pauses.append((time.perf_counter() - started) * 1000)
    return min(pauses)


def object_counts() -> collections.Counter[str]:
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


async def measure(server: Server, connections: int, freeze: bool, lines: int = 0) -> dict[str, Any]:
    """Run ``server`` in this process and measure ``connections`` idle streams."""
    import uvicorn

    os.environ.update(server.env)
    module, attribute = server.app.split(":")
    app = getattr(importlib.import_module(module), attribute)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
        loop="uvloop", http="httptools", backlog=connections,
    )  # fmt: skip
    uvicorn_server = uvicorn.Server(config)
    serving = asyncio.create_task(uvicorn_server.serve())
    while not uvicorn_server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.05)
    path = (server.sse_path or "").format(room="memory")
    # Warm up first: lazily created objects of the first request are not per connection.
    warm = await asyncio.to_thread(open_clients, port, path, 20)
    warm.kill()
    warm.wait()
    await asyncio.sleep(0.5)
    gc.collect()
    if freeze:
        gc.freeze()  # what docs/deployment.md suggests doing after startup
    objects_before = object_counts()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    clients = await asyncio.to_thread(open_clients, port, path, connections)
    await asyncio.sleep(1.0)
    gc.collect()
    after = tracemalloc.take_snapshot()
    objects = sum((object_counts() - objects_before).values())
    tracemalloc.stop()
    pause = full_collection_ms()
    clients.kill()
    clients.wait()
    uvicorn_server.should_exit = True
    await serving
    layers: collections.Counter[str] = collections.Counter()
    for stat in after.compare_to(before, "filename"):
        layers[layer(stat.traceback[0].filename)] += stat.size_diff
    top = [
        (f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}", stat.size_diff / connections)
        for stat in after.compare_to(before, "lineno")[:lines]
    ]
    return {
        "server": server.label,
        "kib": sum(layers.values()) / connections / 1024,
        "objects": objects / connections,
        "gc_ms": pause,
        "layers": {name: size / connections / 1024 for name, size in layers.items()},
        "lines": top,
    }


def table(results: list[dict[str, Any]]) -> str:
    order = ["uvicorn", "asyncio (tasks, events, futures)", "FastAPI + Starlette"]
    order += ["fastapi-streaming", "benchmark app", "other"]
    found = {name for r in results for name in r["layers"]}
    names = [name for name in order if name in found]
    head = ["server", "KiB per connection", "objects per connection", "full GC ms", *names]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for r in results:
        cells = [r["server"], f"{r['kib']:.1f}", f"{r['objects']:.0f}", f"{r['gc_ms']:.1f}"]
        cells += [f"{r['layers'].get(name, 0.0):.1f}" for name in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated keys")
    parser.add_argument(
        "--freeze", action="store_true", help="gc.freeze() after startup, before connecting"
    )
    parser.add_argument(
        "--lines", type=int, default=0, help="also list the N source lines that allocated most"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--hold", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    raise_open_files_limit()
    if args.hold:
        port, path, count = args.hold
        asyncio.run(hold_connections(int(port), path, int(count)))
        return 0
    if args.one:
        import uvloop

        result = uvloop.run(measure(SERVERS[args.one], args.connections, args.freeze, args.lines))
        print(json.dumps(result))
        return 0
    results = []
    for key in args.servers.split(","):
        # A fresh process per server: nothing one imported or allocated counts for another.
        command = [sys.executable, "-m", "benchmarks.memory", "--one", key]
        command += ["--connections", str(args.connections), "--lines", str(args.lines)]
        command += ["--freeze"] if args.freeze else []
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    frozen = ", startup objects frozen" if args.freeze else ""
    print(f"Per idle SSE connection ({args.connections:,} connections{frozen}), sizes in KiB")
    print()
    print(table(results))
    for result in results if args.lines else []:
        print(f"\n{result['server']}: bytes per connection by source line")
        for where, size in result["lines"]:
            print(f"{size:8.0f}  {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
