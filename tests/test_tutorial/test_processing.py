"""The code of docs/processing.md, run against a real server: clicks in over HTTP, counts out
over SSE."""

from __future__ import annotations

import time

from tests.support.clients import post, sse_stream
from tests.support.server import ServerProcess


async def test_clicks_are_counted_per_page_and_second_by_event_time() -> None:
    second = float(int(time.time()) - 10)  # a whole second in the past: event time, not now
    with ServerProcess("docs_src.processing.app:app") as server:
        async with sse_stream(server.url, "/streams/sse/clicks/home/per-second") as home:
            clicks = [
                ("home", second + 0.1),
                ("home", second + 0.5),
                ("pricing", second + 0.6),  # another page: another key, another topic
                ("home", second + 0.9),
                ("home", second + 1.2),  # the next second: closes the first one
            ]
            for page, ts in clicks:
                answer = await post(
                    server.url, f"/streams/publish/clicks/{page}", json={"user": "ann", "ts": ts}
                )
                assert answer.status_code == 202
            # The last second closes when no click comes for a while (idle), so both arrive.
            await home.wait_for(2, timeout=15)
        ids = [event.id for event in home.events if event.data]
    assert home.data() == [
        {"page": "home", "window_start": second, "window_end": second + 1, "count": 3},
        {"page": "home", "window_start": second + 1, "window_end": second + 2, "count": 1},
    ]
    assert len(set(ids)) == 2


async def test_the_derived_topic_is_in_the_asyncapi_document_with_its_source() -> None:
    from docs_src.processing.app import streaming

    document = streaming.asyncapi()
    channel = next(
        channel
        for channel in document["channels"].values()
        if channel["address"] == "/clicks/{page}/per-second"
    )
    derived = channel["x-fastapi-streaming"]["derivedFrom"]
    assert derived["sources"] == ["/clicks/{page}"]
    assert derived["window"] == {"type": "tumbling", "size": 1.0}
    message = next(iter(channel["messages"].values()))
    assert message["payload"] == {"$ref": "#/components/schemas/ClicksPerSecond"}
    schema = document["components"]["schemas"]["ClicksPerSecond"]
    assert set(schema["properties"]) == {"page", "window_start", "window_end", "count"}
