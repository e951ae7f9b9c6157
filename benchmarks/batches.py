"""How many writes the fan-out makes per event: ``python -m benchmarks.batches URL...``.

In one process, ``--clients`` client queues subscribe to one topic and a consumer per queue
takes whatever is pending each time it wakes, as a transport's writer does (and joins the SSE
frames, without a socket). Server code publishes ``--bursts`` bursts of ``--burst`` events at
once. The report gives, per broker URL, the takes (each would be one write to one client), the
events per take, and the process's CPU time per delivered event. Writes per event are what a
saturated server's CPU follows (each is a ``send``), and they do not depend on how loaded the
machine is; the CPU time does.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import uvloop

from fastapi_streaming import StreamingAPI
from fastapi_streaming.fanout import ClientQueue
from fastapi_streaming.transports.sse import _frames


async def measure(url: str, clients: int, bursts: int, burst: int) -> str:
    streaming = StreamingAPI(title="batches", version="1", broker=url)

    @streaming.subscribe("/bench/{room}")
    async def relay(event: dict[str, Any], room: str) -> dict[str, Any]:
        return event

    address = f"/bench/{uuid.uuid4().hex}"
    total = bursts * burst
    takes = delivered = 0

    async def consume(queue: ClientQueue) -> None:
        nonlocal takes, delivered
        got = 0
        while got < total:
            if not queue.ready:
                await queue.waiter()
            batch = queue.take()
            takes += 1
            delivered += len(batch)
            _frames(batch, False)
            got += len(batch)

    async with streaming.running() as runtime:
        queues = [ClientQueue(total + 1) for _ in range(clients)]
        for queue in queues:
            await runtime.subscribe(queue, address)
        consumers = [asyncio.create_task(consume(queue)) for queue in queues]
        await asyncio.sleep(0.2)
        pad = "x" * 150
        cpu = time.process_time()
        for number in range(bursts):
            events = range(number * burst, (number + 1) * burst)
            await asyncio.gather(*(runtime.emit(address, {"seq": n, "pad": pad}) for n in events))
            await asyncio.sleep(0.005)
        await asyncio.wait_for(asyncio.gather(*consumers), 120)
        cpu = time.process_time() - cpu
    return (
        f"{url:32} takes {takes:>7,}  events per take {delivered / takes:5.1f}  "
        f"CPU {cpu * 1e6 / delivered:.2f} us per delivered event"
    )


async def main_async(arguments: argparse.Namespace) -> None:
    for url in arguments.urls:
        print(await measure(url, arguments.clients, arguments.bursts, arguments.burst))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+", help="broker URLs, e.g. memory:// redis://127.0.0.1")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--bursts", type=int, default=20)
    parser.add_argument("--burst", type=int, default=50)
    uvloop.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
