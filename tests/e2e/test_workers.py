"""``fastapi-streaming run --workers N``: connections are spread evenly over the workers."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.support.server import ServerProcess

CONNECTIONS = 200


async def worker_of_each_connection(port: int) -> list[int]:
    """Open every connection first (as clients of long streams hold theirs), then ask each
    which worker process serves it."""
    opened = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", port) for _ in range(CONNECTIONS))
    )
    try:
        for _, writer in opened:
            writer.write(b"GET /test/pid HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        answers = await asyncio.gather(
            *(asyncio.wait_for(reader.read(), 20) for reader, _ in opened)
        )
    finally:
        for _, writer in opened:
            writer.close()
    return [int(answer.rpartition(b"\r\n\r\n")[2]) for answer in answers]


def test_two_workers_each_serve_a_fair_share_of_connections() -> None:
    env = {"BROKER_URL": "memory://"}
    with ServerProcess("tests.apps.core_app:app", env=env, workers=2) as server:
        pids = asyncio.run(worker_of_each_connection(server.port))

    shares = Counter(pids)
    assert len(shares) == 2, shares
    assert min(shares.values()) >= 0.3 * CONNECTIONS, shares
