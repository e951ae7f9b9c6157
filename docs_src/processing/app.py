from fastapi import FastAPI
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI
from fastapi_streaming.processing import Count, Tumbling, Window


class Click(BaseModel):
    user: str
    ts: float  # epoch seconds


class ClicksPerSecond(BaseModel):
    page: str
    window_start: float  # epoch seconds, like ts
    window_end: float
    count: int


app = FastAPI()
streaming = StreamingAPI(title="Clicks", version="1.0.0", broker="memory://")


@streaming.subscribe("/clicks/{page}")
async def clicks(event: Click, page: str) -> Click:
    """Every click on one page."""
    return event


@streaming.publish("/clicks/{page}")
async def click(event: Click, page: str) -> Click:
    """Browsers report clicks here."""
    return event


@streaming.derive(
    "/clicks/{page}/per-second",
    source="/clicks/{page}",
    window=Tumbling(seconds=1),
    aggregate=Count(),
    time="ts",
)
def per_second(window: Window[int], page: str) -> ClicksPerSecond:
    """How many clicks one page got in each second, once the second is over."""
    return ClicksPerSecond(
        page=page, window_start=window.start, window_end=window.end, count=window.value
    )


streaming.init_app(app)
