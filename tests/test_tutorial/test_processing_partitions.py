"""The key-partitions example of docs/processing.md, run as two real processes sharing its
partitions on a private Redis: clicks in over HTTP to either, counts out over SSE."""

from __future__ import annotations

import time

from tests.support.clients import post, sse_stream
from tests.support.redis_control import private_redis
from tests.support.server import ServerProcess

APP = "docs_src.processing.partitions:app"


async def test_two_processes_count_every_page_once() -> None:
    second = float(int(time.time()) - 10)  # a whole second in the past: event time
    pages = [f"page{n}" for n in range(8)]  # spread over the 12 partitions
    with private_redis("redis-stream") as redis:
        env = {"BROKER_URL": redis.url}
        with ServerProcess(APP, env=env) as first, ServerProcess(APP, env=env) as second_app:
            async with sse_stream(first.url, "/streams/sse/clicks/per-second") as counts:
                for index, page in enumerate(pages):
                    target = (first, second_app)[index % 2]  # publish through both processes
                    for offset in (0.1, 0.2, 0.3)[: 1 + index % 3]:
                        answer = await post(
                            target.url,
                            f"/streams/publish/clicks/{page}",
                            json={"user": "ann", "ts": second + offset},
                        )
                        assert answer.status_code == 202
                # The windows close once their pages stay idle; every page's count arrives.
                await counts.wait_for(len(pages), timeout=30)
    by_page = {event["page"]: event["count"] for event in counts.data()}
    assert by_page == {page: 1 + index % 3 for index, page in enumerate(pages)}
    assert len(counts.data()) == len(pages)  # each window's count once
