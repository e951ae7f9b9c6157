"""``python -m benchmarks.soak``: hold thousands of clients for a long time, through churn and
broker restarts, and watch memory, losses and errors.

What a production deployment lives through, compressed: 2,000 SSE and 500 WebSocket clients
on fastapi-streaming with two uvicorn workers on Redis, for 30 minutes (``--duration``), while
events are published over HTTP at a steady rate. Every minute 5% of the clients disconnect and
reconnect at once, resuming with their last event id; every 10 minutes the Redis server
(a private one this run starts on a free port and owns) is stopped and started again, empty.

It reports, at the end, as a markdown table (also written to ``benchmarks/results/``):

- the server's RSS (both workers and their parent) over time, and its growth from the end of
  the warm-up to the end of the run (target: under 5%);
- events lost by clients that resumed: accepted (202) events of their room, published after
  their first event, that never reached them, split into those announced by a ``gap`` signal
  and silent ones (target: none silent), and whether they were published during an outage;
- 5xx answers, to publishes and to connection attempts, outside the outages (target: none).
  An outage runs from the moment Redis is stopped until ``--recovery`` seconds after it is
  back: publishes answered 503 with ``Retry-After`` meanwhile are the documented behaviour.

``--short`` runs three minutes with a restart every minute: a first reading, not the soak
itself. ``--quick`` (part of ``make bench-quick``) runs 250 clients for 20 seconds with one
restart, to check that the harness works.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from .events import encode, now_us
from .processes import LineProcess, ServerProcess, free_port, raise_open_files_limit, stop

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 1024 * 1024


class PrivateRedis:
    """A redis-server that keeps nothing on disk, on its own port, stopped by its PID."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed")
        command = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        command += ["--appendonly", "no"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


@dataclass
class Published:
    room: str
    sent_us: int
    status: int  # HTTP status, 0 when the request failed


@dataclass
class Run:
    args: argparse.Namespace
    started_us: int = field(default_factory=now_us)
    published: dict[int, Published] = field(default_factory=dict)
    outages: list[list[int]] = field(default_factory=list)  # [stopped_us, recovered_us]
    samples: list[dict[str, Any]] = field(default_factory=list)
    churned: int = 0
    clients: list[LineProcess] = field(default_factory=list)

    def in_outage(self, at_us: int) -> bool:
        return any(start <= at_us <= end for start, end in self.outages)


async def publish_steadily(run: Run, port: int, prefix: str, stop_at: float) -> None:
    """POST numbered events at ``--rate`` per second, round robin over the rooms."""
    args = run.args
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    pending: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=15, limits=limits
    ) as http:

        async def one(seq: int, room: str) -> None:
            record = run.published[seq] = Published(room, now_us(), 0)
            try:
                answer = await http.post(f"/streams/publish/bench/{room}", content=encode(seq))
                record.status = answer.status_code
            except httpx.HTTPError:
                record.status = 0

        seq = 0
        interval = 1 / args.rate
        next_at = time.monotonic()
        while time.monotonic() < stop_at:
            room = f"{prefix}-{seq % args.rooms}"
            task = asyncio.create_task(one(seq, room))
            pending.add(task)
            task.add_done_callback(pending.discard)
            seq += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if pending:
            await asyncio.wait(pending, timeout=20)


def start_clients(
    args: argparse.Namespace, port: int, prefix: str, clients: list[LineProcess]
) -> list[LineProcess]:
    """SSE clients in processes of at most 1,000 connections, WebSocket clients in one more."""
    offset = 0
    for kind, total in (("sse", args.sse), ("ws", args.ws)):
        per_process = 1000
        for start in range(0, total, per_process):
            count = min(per_process, total - start)
            clients.append(
                LineProcess(
                    "benchmarks.soakclient",
                    *("--port", str(port), "--kind", kind, "--connections", str(count)),
                    *("--rooms", str(args.rooms), "--prefix", prefix, "--offset", str(offset)),
                )
            )
            offset += count
    for client in clients:
        client.read()  # the first line says every connection is open
    return clients


def status_of(clients: list[LineProcess]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for client in clients:
        total.update(client.ask("status"))
    return dict(total)


async def drive(run: Run, server: ServerProcess, redis: PrivateRedis) -> None:
    args = run.args
    prefix = f"soak{uuid.uuid4().hex[:6]}"
    clients = await asyncio.to_thread(start_clients, args, server.port, prefix, run.clients)
    opened = await asyncio.to_thread(status_of, clients)
    print(f"{opened['open']} clients connected; soaking for {args.duration:g} s", flush=True)
    began = time.monotonic()
    stop_at = began + args.duration
    publisher = asyncio.create_task(publish_steadily(run, server.port, prefix, stop_at))
    next_sample = began
    next_churn = began + args.churn_every / 2
    next_restart = began + args.restart_every
    received_before, sampled_before = 0, began
    while time.monotonic() < stop_at:
        now = time.monotonic()
        if now >= next_restart and now + args.outage < stop_at:
            stopped = now_us()
            await asyncio.to_thread(redis.stop)
            await asyncio.sleep(args.outage)
            await asyncio.to_thread(redis.start)
            run.outages.append([stopped, now_us() + int(args.recovery * 1e6)])
            print(f"{now - began:7.0f} s  Redis restarted", flush=True)
            next_restart += args.restart_every
        if now >= next_churn:
            answers = [await asyncio.to_thread(c.ask, f"churn {args.churn}") for c in clients]
            run.churned += sum(a["churned"] for a in answers)
            next_churn += args.churn_every
        if now >= next_sample:
            status = await asyncio.to_thread(status_of, clients)
            elapsed = time.monotonic() - began
            rate = (status["received"] - received_before) / max(0.001, now - sampled_before)
            received_before, sampled_before = status["received"], now
            sample = {"t": round(elapsed), "rss": server.rss(), "rate": round(rate), **status}
            run.samples.append(sample)
            print(
                f"{elapsed:7.0f} s  RSS {sample['rss'] / MIB:7.1f} MiB  open {status['open']:5}"
                f"  {rate:8.0f} deliveries/s  gaps {status['gaps']}  drops {status['drops']}",
                flush=True,
            )
            next_sample += args.sample_every
        await asyncio.sleep(0.2)
    await publisher
    await asyncio.sleep(args.drain)


def collect(run: Run, clients: list[LineProcess]) -> dict[str, Any]:
    accepted: dict[str, list[int]] = {}
    for seq, record in sorted(run.published.items()):
        if record.status == 202:
            accepted.setdefault(record.room, []).append(seq)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(accepted, handle)
    try:
        reports = [client.ask(f"report {handle.name}") for client in clients]
    finally:
        Path(handle.name).unlink()
    missed: dict[str, Counter[str]] = {}
    for report in reports:
        for kind, by_seq in report["missed"].items():
            counts = missed.setdefault(kind, Counter())
            for seq, count in by_seq.items():
                when = "outage" if run.in_outage(run.published[int(seq)].sent_us) else "outside"
                counts[when] += count
    refused = [tuple(r) for report in reports for r in report["refused"]]
    publish_5xx = Counter(
        "outage" if run.in_outage(p.sent_us) else "outside"
        for p in run.published.values()
        if p.status >= 500 or p.status == 0
    )
    connect_5xx = Counter(
        "outage" if run.in_outage(at) else "outside" for at, status in refused if status >= 500
    )
    totals: Counter[str] = Counter()
    for report in reports:
        totals.update(
            {k: v for k, v in report.items() if isinstance(v, int) and not isinstance(v, bool)}
        )
    return {
        "accepted": sum(len(v) for v in accepted.values()),
        "published": len(run.published),
        "publish_statuses": dict(Counter(p.status for p in run.published.values())),
        "missed": {kind: dict(c) for kind, c in missed.items()},
        "publish_5xx": dict(publish_5xx),
        "connect_5xx": dict(connect_5xx),
        "connect_refusals": dict(Counter(status for _, status in refused)),
        "clients": dict(totals),
    }


def rss_growth(run: Run) -> tuple[float, float, float]:
    """RSS after warm-up, at the end (mean of the last three samples), and the growth in %."""
    after = [s for s in run.samples if s["t"] >= run.args.warmup]
    if len(after) < 2:
        return 0.0, 0.0, 0.0
    base = after[0]["rss"]
    end = statistics.mean(s["rss"] for s in after[-3:])
    return base / MIB, end / MIB, (end - base) / base * 100


def markdown(run: Run, results: dict[str, Any]) -> str:
    args = run.args
    base, end, growth = rss_growth(run)
    missed = results["missed"]
    resumed_silent = sum(missed.get("resumed_silent", {}).values())
    resumed_gap = sum(missed.get("resumed_gap", {}).values())
    other_silent = sum(missed.get("other_silent", {}).values())
    other_gap = sum(missed.get("other_gap", {}).values())
    outside_5xx = results["publish_5xx"].get("outside", 0) + results["connect_5xx"].get(
        "outside", 0
    )
    clients = results["clients"]
    lines = [
        f"## Soak: {args.sse:,} SSE + {args.ws:,} WebSocket clients, {args.workers} workers, "
        f"{args.scheme}://, {args.duration / 60:g} min",
        "",
        f"Churn {args.churn:.0%} of the clients every {args.churn_every:g} s; Redis restarted "
        f"every {args.restart_every:g} s (down {args.outage:g} s); {args.rate:g} events/s over "
        f"{args.rooms} rooms; warm-up {args.warmup:g} s.",
        "",
        "| minute | server RSS (MiB) | clients open | deliveries/s | gap signals | dropped |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    minute = -1
    for sample in run.samples:
        if sample["t"] // 60 != minute or sample is run.samples[-1]:
            minute = sample["t"] // 60
            lines.append(
                f"| {sample['t'] / 60:.1f} | {sample['rss'] / MIB:.1f} | {sample['open']:,} | "
                f"{sample['rate']:,} | {sample['gaps']} | {sample['drops']} |"
            )
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(results["publish_statuses"].items()))
    lines += [
        "",
        "| measure | value | target |",
        "|---|---:|---|",
        f"| RSS after warm-up -> end | {base:.1f} -> {end:.1f} MiB ({growth:+.1f}%) | < 5% |",
        f"| events published / accepted (202) | {results['published']:,} / "
        f"{results['accepted']:,} ({statuses}) | |",
        f"| clients that resumed / reconnections | {clients.get('resumed_clients', 0):,} / "
        f"{clients.get('resumes', 0):,} (churned {run.churned:,}, dropped by the server "
        f"{clients.get('drops', 0):,}) | |",
        f"| lost by resuming clients, silently | {resumed_silent:,} "
        f"({_split(missed.get('resumed_silent', {}))}) | 0 |",
        f"| lost by resuming clients, announced by a gap | {resumed_gap:,} "
        f"({_split(missed.get('resumed_gap', {}))}) | |",
        f"| lost by other clients (silently / with a gap) | {other_silent:,} / {other_gap:,} "
        f"({_split(missed.get('other_silent', {}))}) | |",
        f"| duplicates (at resuming clients; SSE / WebSocket) | "
        f"{clients.get('duplicates', 0):,} ({clients.get('duplicates_resumed', 0):,}; "
        f"{clients.get('duplicates_sse', 0):,} / {clients.get('duplicates_ws', 0):,}) | |",
        f"| 5xx outside outages (publish + connect) | {outside_5xx:,} | 0 |",
        f"| 5xx / failed requests during outages (publish + connect) | "
        f"{results['publish_5xx'].get('outage', 0):,} + "
        f"{results['connect_5xx'].get('outage', 0):,} | 503 documented |",
        f"| connection refusals by status | {results['connect_refusals'] or 'none'} | |",
    ]
    return "\n".join(lines) + "\n"


def _split(counts: dict[str, int]) -> str:
    return f"{counts.get('outage', 0):,} published during an outage"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--short", action="store_true", help="3 minutes, a restart a minute")
    parser.add_argument(
        "--quick", action="store_true", help="20 s, 250 clients: checks the harness runs"
    )
    parser.add_argument("--duration", type=float, default=1800, help="seconds (default 30 min)")
    parser.add_argument("--sse", type=int, default=2000, help="SSE clients")
    parser.add_argument("--ws", type=int, default=500, help="WebSocket clients")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scheme", default="redis", help="redis or redis-stream")
    parser.add_argument("--rate", type=float, default=20, help="events published per second")
    parser.add_argument("--rooms", type=int, default=20, help="topics the clients spread over")
    parser.add_argument("--churn", type=float, default=0.05, help="fraction reconnected")
    parser.add_argument("--churn-every", type=float, default=60, help="seconds")
    parser.add_argument("--restart-every", type=float, default=600, help="seconds")
    parser.add_argument("--outage", type=float, default=2, help="seconds Redis stays down")
    parser.add_argument(
        "--recovery",
        type=float,
        default=10,
        help="seconds after the restart still counted as outage",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=300,
        help="seconds before RSS counts (the resume buffers fill: 256 events per room)",
    )
    parser.add_argument("--sample-every", type=float, default=10, help="seconds")
    parser.add_argument("--drain", type=float, default=5, help="seconds to wait at the end")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.short:
        # Five rooms at 4 events/s each fill their resume buffers (256 events) in about a
        # minute, so the RSS after the warm-up is comparable with the end.
        args.duration, args.restart_every, args.rooms, args.warmup = 180, 60, 5, 75
    if args.quick:
        args.duration, args.sse, args.ws, args.restart_every = 20, 200, 50, 10
        args.churn_every, args.warmup, args.sample_every, args.drain = 5, 5, 2, 3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_open_files_limit()
    run = Run(args)
    redis = PrivateRedis()
    redis.start()
    server = ServerProcess(
        "benchmarks.servers.streaming:app",
        python=sys.executable,
        env={"BENCH_BROKER": f"{args.scheme}://127.0.0.1:{redis.port}"},
        workers=args.workers,
    )
    try:
        server.start()
        asyncio.run(drive(run, server, redis))
        results = collect(run, run.clients)
    finally:
        for client in run.clients:
            client.stop()
        server.stop()
        redis.stop()
    text = markdown(run, results)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"soak-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    (args.results / f"{stem}.md").write_text(text)
    raw = {"args": vars(args) | {"results": str(args.results)}, "samples": run.samples, **results}
    (args.results / f"{stem}.json").write_text(json.dumps(raw, indent=1, default=str))
    print()
    print(text)
    print(f"Written to {args.results / stem}.md and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
