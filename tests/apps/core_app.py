"""The app the end-to-end tests run: one topic per behaviour under test.

The broker comes from ``BROKER_URL``; ``/test/...`` routes let tests drive server-side emits and
read the fan-out's counters, as an operator's code would.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from typing import Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field

from fastapi_streaming import StreamingAPI


class Quote(BaseModel):
    symbol: str
    price: float = Field(gt=0)


class Message(BaseModel):
    text: str = Field(max_length=10_000)
    author: str = "anonymous"


if os.environ.get("LOG_LEVEL"):  # every record of every logger, for tests that read them all
    logging.basicConfig(level=os.environ["LOG_LEVEL"], format="%(levelname)s %(name)s %(message)s")
    logging.getLogger(__name__).debug("Logging every record from %s up", os.environ["LOG_LEVEL"])

streaming = StreamingAPI(
    title="Core test app",
    broker=os.environ.get("BROKER_URL", "memory://"),
    max_queue=int(os.environ.get("MAX_QUEUE", "1000")),
    max_message_size=int(os.environ.get("MAX_MESSAGE_SIZE", "65536")),
    heartbeat=float(os.environ.get("HEARTBEAT", "15")),
    # CONSOLE=0: no console, so no channel of its own followed on the broker.
    console=os.environ.get("CONSOLE", "1") == "1",
)
calls: dict[str, int] = {"quotes": 0}
PREFIX = os.environ.get("CHANNEL_PREFIX", "")


@streaming.subscribe("/stocks/{symbol}", channel=PREFIX + "stocks.{symbol}")
async def quotes(event: Quote, symbol: str) -> Quote | None:
    """Quotes of one symbol; counts its calls so tests can see it runs once per event."""
    calls["quotes"] += 1
    return event


@streaming.publish("/stocks/{symbol}")
async def publish_quote(event: Quote, symbol: str) -> Quote:
    return event


def room_name(room_id: int) -> str:
    return f"room-{room_id}"


@streaming.subscribe("/rooms/{room_id:int}", channel=PREFIX + "rooms.{room_id}")
async def room_events(event: Message, room_id: int) -> Message:
    return event


@streaming.publish("/rooms/{room_id:int}")
async def post_to_room(event: Message, room_id: int, name: str = Depends(room_name)) -> Message:
    """Signs each message with the room's name, found by a dependency of the path parameter."""
    return Message(text=event.text, author=f"{event.author}@{name}")


@streaming.subscribe("/alerts", channel=PREFIX + "alerts")
async def alerts(event: dict[str, Any]) -> dict[str, Any]:
    """Subscribe-only: fed by server-side code and by other systems writing to the broker."""
    return event


@streaming.publish("/audit", channel=PREFIX + "audit")
async def audit(event: dict[str, Any]) -> dict[str, Any] | None:
    """Publish-only; events whose ``drop`` is true are filtered out by the handler."""
    return None if event.get("drop") else event


@streaming.subscribe("/bulk/{kind}", channel=PREFIX + "bulk.{kind}", overflow="drop_oldest")
async def bulk(event: dict[str, Any], kind: str) -> dict[str, Any]:
    return event


@streaming.subscribe("/strict/{kind}", channel=PREFIX + "strict.{kind}")
async def strict(event: dict[str, Any], kind: str) -> dict[str, Any]:
    """Default overflow policy: a client that cannot keep up is disconnected."""
    return event


@streaming.publish("/faulty", channel=PREFIX + "faulty")
async def faulty(event: dict[str, Any]) -> dict[str, Any]:
    """A handler with a bug: every event makes it raise."""
    raise RuntimeError("a bug in the publish handler")


app = FastAPI()
streaming.init_app(app)


@app.post("/test/emit")
async def emit(address: str, payload: dict[str, Any]) -> dict[str, str]:
    event = await streaming.emit(address, payload)
    return {"id": event.id}


@app.post("/test/burst")
async def burst(address: str, count: int, size: int = 100) -> dict[str, int]:
    """Emit ``count`` numbered events of about ``size`` bytes, as a fast live feed would.

    Each emit gives the event loop a turn, as a feed reading from a socket does; a loop that
    never yields would pile every event up in the broker client first.
    """
    padding = "x" * size
    for seq in range(count):
        await streaming.emit(address, {"seq": seq, "pad": padding})
        await asyncio.sleep(0)
    return {"count": count}


@app.get("/test/stats")
async def stats() -> dict[str, Any]:
    return {"calls": calls, "fanout": streaming.runtime.fanout.stats()}


@app.post("/test/emit-all")
async def emit_all(items: list[dict[str, Any]]) -> list[str]:
    """Emit to several addresses one right after the other (usually in one millisecond), as a
    feed that publishes several symbols at once does."""
    return [(await streaming.emit(item["address"], item["payload"])).id for item in items]


@app.get("/test/pid")
async def pid() -> int:
    """Which worker process answered."""
    return os.getpid()


@app.get("/test/gc")
async def collector() -> dict[str, Any]:
    """How the worker's garbage collector is set up."""
    return {"frozen": gc.get_freeze_count(), "threshold": list(gc.get_threshold())}
