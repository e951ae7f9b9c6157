"""An app whose live delivery can be held back, so that a test can resume a client while the
process's live stream lags behind what the broker's history already holds.

On a busy process, or one that has just reconnected to its broker, the topic stream delivers
an event some time after the broker stored it; a resume reads the broker's history at once and
is ahead. Here the lag is made on purpose: the subscribe handler of ``/gated/{room}`` waits, the
first time it meets an event marked ``hold``, until a test opens the gate
(``POST /test/gate``). A resume's history read prepares the same event a second time, which
goes through, so the resume is ahead of the live stream by every event behind the held one.

The broker comes from ``BROKER_URL``.
"""

from __future__ import annotations

import asyncio
import os

from fastapi import FastAPI
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI


class Note(BaseModel):
    text: str
    hold: bool = False


streaming = StreamingAPI(title="Gated test app", broker=os.environ.get("BROKER_URL", "memory://"))
gate = asyncio.Event()
#: Texts of the held events met so far, and how many deliveries wait at the gate now.
met: set[str] = set()
waiting = 0


@streaming.subscribe("/gated/{room}")
async def gated(event: Note, room: str) -> Note:
    """Waits at the gate the first time it meets an event marked ``hold`` (live delivery)."""
    global waiting
    if event.hold and event.text not in met:
        met.add(event.text)
        waiting += 1
        try:
            await gate.wait()
        finally:
            waiting -= 1
    return event


@streaming.publish("/gated/{room}")
async def publish_note(event: Note, room: str) -> Note:
    return event


app = FastAPI()


@app.get("/test/gate")
async def gate_state() -> dict[str, int]:
    return {"waiting": waiting}


@app.post("/test/gate")
async def open_gate() -> dict[str, int]:
    gate.set()
    return {"waiting": waiting}


streaming.init_app(app)
