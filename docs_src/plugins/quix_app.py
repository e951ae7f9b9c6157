from typing import Any

from pydantic import BaseModel

from fastapi_streaming import StreamingAPI
from fastapi_streaming.processing import Tumbling, Window

streaming = StreamingAPI(broker="kafka://127.0.0.1:9092", processing_engine="quix")


class Click(BaseModel):
    user: str
    ts: float


@streaming.publish("/clicks/{page}")
async def clicks(event: Click, page: str) -> Click:
    return event


@streaming.derive(
    "/clicks/{page}/per-second",
    source="/clicks/{page}",
    window=Tumbling(seconds=1),
    time="ts",
)
def per_second(window: Window[int], page: str) -> dict[str, Any]:
    return {"page": page, "window_start": window.start, "count": window.value}
