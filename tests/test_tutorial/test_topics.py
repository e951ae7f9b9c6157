"""The handlers of docs/topics.md: dependencies, filtering and an explicit channel."""

from __future__ import annotations

from tests.support.clients import post, sse_stream
from tests.support.server import ServerProcess


async def test_alerts_filter_readings_with_a_dependency() -> None:
    with ServerProcess("docs_src.topics.handlers:app") as server:
        async with sse_stream(server.url, "/streams/sse/rooms/3/alerts") as stream:
            for celsius in (21.0, 35.5):
                answer = await post(
                    server.url,
                    "/streams/publish/rooms/3/alerts",
                    json={"sensor": "north", "celsius": celsius},
                )
                assert answer.status_code == 202
            await stream.wait_for(1)
        too_hot = await post(
            server.url, "/streams/publish/rooms/3/alerts", json={"sensor": "x", "celsius": 99}
        )
    assert stream.data() == [{"room": 3, "message": "north reads 35.5 °C"}]
    assert too_hot.status_code == 422
