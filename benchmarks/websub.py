"""The WebSub scenario: signed deliveries to many subscribers, on SQLite and on PostgreSQL.

One run: start the hub app (``servers/websub_hub.py``) on a fresh database, start one receiver
process holding every subscriber (``websub_receiver.py``), subscribe them all (each with its own
secret, so every delivery is signed for its subscriber), prime until each has received a probe
event, then publish events at a fixed rate and wait until every subscriber has every event, or
deliveries stop. Deliveries/s counts from the first publish to the last delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from . import latency
from .events import PROBE_SEQ, encode
from .processes import (
    CPUClock,
    LineProcess,
    ServerProcess,
    free_port,
    raise_open_files_limit,
    run_publisher,
)
from .profiling import record
from .scenarios import Scenario
from .selfsigned import SelfSigned

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DATABASES = ("sqlite", "postgresql")
#: Subscription requests in flight at once while subscribing.
SUBSCRIBING = 64
#: How long deliveries may pause before the rest count as undelivered.
QUIET = 10.0
LIMIT = 180.0


class ReceiverProcess(LineProcess):
    """The subscribers' process (``benchmarks.websub_receiver``); answers once it listens."""

    def __init__(self, tls: SelfSigned | None = None) -> None:
        self.port = free_port()
        options = ["--port", str(self.port)]
        if tls is not None:
            options += ["--cert", str(tls.cert), "--key", str(tls.key)]
        super().__init__("benchmarks.websub_receiver", *options)
        self.read()

    def status(self) -> dict[str, Any]:
        return self.ask("status")


@contextmanager
def database(kind: str) -> Iterator[tuple[str, str]]:
    """A fresh hub database: (SQLAlchemy URL, table prefix); PostgreSQL tables dropped after."""
    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-websub-") as folder:
            yield f"sqlite+aiosqlite:///{Path(folder) / 'hub.sqlite3'}", prefix
        return
    try:
        yield POSTGRES_URL, prefix
    finally:
        asyncio.run(_drop_tables(prefix))


async def _drop_tables(prefix: str) -> None:
    import asyncpg

    connection = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    try:
        names = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE $1", prefix + "%"
        )
        for row in names:
            await connection.execute(f'DROP TABLE IF EXISTS "{row["tablename"]}" CASCADE')
    finally:
        await connection.close()


async def subscribe_all(base: str, topic_url: str, callbacks: list[str]) -> None:
    """POST one subscription request per callback, each with its own secret."""
    slots = asyncio.Semaphore(SUBSCRIBING)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def one(index: int, callback: str) -> None:
            form = {
                "hub.mode": "subscribe",
                "hub.topic": topic_url,
                "hub.callback": callback,
                "hub.secret": f"secret-{index}",
            }
            async with slots:
                answer = await http.post("/streams/websub/hub", data=form)
            if answer.status_code != 202:
                raise RuntimeError(f"subscription refused: {answer.status_code} {answer.text}")

        await asyncio.gather(*(one(i, url) for i, url in enumerate(callbacks)))


def wait_for(check: Any, limit: float, what: str) -> float:
    """Poll ``check()`` until true; the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit:
            raise RuntimeError(f"timed out after {limit:.0f}s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started


def prime(server: ServerProcess, receiver: ReceiverProcess, path: str, subscribers: int) -> None:
    """Publish probe events until every subscriber received one: all subscriptions are live.

    Another probe only once the last one's deliveries stopped arriving (with 10,000
    subscribers a probe is 10,000 deliveries: one a second would pile up a backlog).
    """
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as http:
        seen, last_progress, probed = -1, 0.0, False
        while (primed := receiver.status()["primed"]) < subscribers:
            if time.monotonic() > deadline:
                raise RuntimeError("not every subscription became active within 120 s")
            if primed != seen:
                seen, last_progress = primed, time.monotonic()
            if not probed or time.monotonic() - last_progress > 2.0:
                headers = {"content-type": "application/json"}
                http.post(path, content=encode(PROBE_SEQ), headers=headers)
                last_progress, probed = time.monotonic(), True
            time.sleep(0.2)


def websub_run(
    scenario: Scenario,
    kind: str,
    *,
    tls: bool = False,
    profile: Path | None = None,
    concurrency: int | None = None,
) -> dict[str, Any]:
    """``scenario.connections`` subscribers, ``scenario.rate`` events/s for its duration.

    ``tls``: the receiver serves HTTPS with a self-signed certificate the hub is told to trust.
    ``profile``: py-spy samples the hub while events are published and delivered, into there.
    """
    room = uuid.uuid4().hex[:12]
    subscribers = scenario.connections
    with database(kind) as (url, prefix), tempfile.TemporaryDirectory() as folder:
        certificate = SelfSigned.create(Path(folder)) if tls else None
        env = {"BENCH_WEBSUB_DB": url, "BENCH_WEBSUB_PREFIX": prefix}
        if certificate is not None:
            env["BENCH_WEBSUB_CA"] = str(certificate.cert)
        if concurrency is not None:
            env["BENCH_WEBSUB_CONCURRENCY"] = str(concurrency)
        server = ServerProcess("benchmarks.servers.websub_hub:app", python=sys.executable, env=env)
        server.start()
        receiver: ReceiverProcess | None = None
        try:
            receiver = ReceiverProcess(certificate)
            base = f"http://127.0.0.1:{server.port}"
            scheme = "https" if tls else "http"
            callbacks = [f"{scheme}://127.0.0.1:{receiver.port}/cb/{n}" for n in range(subscribers)]
            started = time.monotonic()
            asyncio.run(subscribe_all(base, f"{base}/streams/websub/bench/{room}", callbacks))
            status = receiver.status
            wait_for(lambda: status()["verified"] >= subscribers, 120, "verifications")
            subscribed_s = time.monotonic() - started
            path = f"/streams/publish/bench/{room}"
            prime(server, receiver, path, subscribers)
            before = status()["deliveries"]
            server_clock = CPUClock([server.pid])
            receiver_clock = CPUClock([receiver.pid])
            sampler = None
            if profile is not None:
                output = profile / f"websub-{kind}-{subscribers}{'-tls' if tls else ''}.txt"
                sampler = record(server.pid, output, scenario.duration + 30)
            published, _ = run_publisher(
                port=server.port, path=path, rate=scenario.rate, duration=scenario.duration
            )
            sent = published["sent"] - len(published["unconfirmed_seqs"])
            expected = sent * subscribers
            drain(receiver, before + expected)
            server_cpu, server_share = server_clock.seconds(), server_clock.share()
            if sampler is not None:
                # py-spy writes what it sampled when interrupted (not when terminated).
                sampler.send_signal(signal.SIGINT)
                sampler.wait(30)
            receiver_share = receiver_clock.share()
            got = status()
            rss = server.rss()
        finally:
            if receiver is not None:
                receiver.stop()
            server.stop()
    delivered = got["deliveries"] - before
    window = (got["last_us"] - published["start_us"]) / 1e6
    return {
        "database": kind + (" (HTTPS)" if tls else ""),
        "subscribers": subscribers,
        "events": sent,
        "expected": expected,
        "delivered": delivered,
        "delivered_rate": delivered / window if window > 0 and delivered else 0.0,
        "subscribe_s": subscribed_s,
        **latency.summary({int(k): v for k, v in got["histogram"].items()}),
        "undelivered": expected - delivered,
        "duplicates": got["duplicates"],
        "bad_signatures": got["bad_signatures"],
        "server_cpu": server_share,
        "us_per_delivery": server_cpu * 1e6 / delivered if delivered else None,
        "client_cpu": receiver_share,
        "rss_mib": rss / 2**20,
    }


def drain(receiver: ReceiverProcess, total: int) -> None:
    """Wait until ``total`` deliveries arrived, or none arrived for :data:`QUIET` seconds."""
    started = last_change = time.monotonic()
    seen = -1
    while time.monotonic() - started < LIMIT:
        status = receiver.status()
        count = status["deliveries"]
        if count >= total:
            return
        arrived = status["arrivals"]  # probes count as progress too
        if arrived != seen:
            seen, last_change = arrived, time.monotonic()
        elif time.monotonic() - last_change > QUIET:
            return
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.websub --subscribers 1000 --events 20``: one table row per run."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.websub", description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20, help="events published")
    parser.add_argument(
        "--rate",
        type=float,
        default=5.0,
        help="events per second (5: 5,000 deliveries/s offered "
        "to 1,000 subscribers; more measures how fast a burst drains)",
    )
    parser.add_argument("--database", default=",".join(DATABASES), help="sqlite,postgresql")
    parser.add_argument("--tls", action="store_true", help="the receiver speaks HTTPS")
    parser.add_argument("--profile", type=Path, help="py-spy the hub into this folder")
    parser.add_argument("--concurrency", type=int, help="the hub's WebSubSettings.concurrency")
    args = parser.parse_args(argv)
    raise_open_files_limit()
    scenario = Scenario("websub", "websub", args.subscribers, args.rate, args.events / args.rate)
    print(
        "| hub database | subscribers x events | deliveries/s | p50 | p99 | undelivered, "
        "duplicates, bad signatures | hub CPU | hub CPU per delivery | receiver CPU |"
    )
    print("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for kind in args.database.split(","):
        run = websub_run(
            scenario, kind, tls=args.tls, profile=args.profile, concurrency=args.concurrency
        )
        print(
            f"| {run['database']} | {args.subscribers:,} x {run['events']} "
            f"| {run['delivered_rate']:,.0f} | {(run['p50_ms'] or 0) / 1000:.2f} s "
            f"| {(run['p99_ms'] or 0) / 1000:.2f} s "
            f"| {run['undelivered']}, {run['duplicates']}, {run['bad_signatures']} "
            f"| {run['server_cpu']:.0%} | {(run['us_per_delivery'] or 0) / 1000:.2f} ms "
            f"| {run['client_cpu']:.0%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
