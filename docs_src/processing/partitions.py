import os

from fastapi import FastAPI
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI
from fastapi_streaming.processing import Count, Tumbling, Window


class Click(BaseModel):
    user: str
    ts: float  # epoch seconds


app = FastAPI()
streaming = StreamingAPI(
    title="Clicks", broker=os.environ.get("BROKER_URL", "redis-stream://127.0.0.1:6379")
)


@streaming.subscribe("/clicks/{page}")
@streaming.publish("/clicks/{page}")
async def clicks(event: Click, page: str) -> Click:
    return event


@streaming.derive(
    "/clicks/per-second",
    source="/clicks/{page}",
    key="page",
    window=Tumbling(seconds=1),
    aggregate=Count(),
    time="ts",
    partitions=12,
)
def per_second(window: Window[int], page: str) -> dict[str, object]:
    return {"page": page, "count": window.value}


streaming.init_app(app)
