"""Request/reply: a publish topic whose handler answers each request."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI


class Sum(BaseModel):
    """Numbers to add, and the topic that should also get the result."""

    numbers: list[float]
    reply_to: str


class SumResult(BaseModel):
    """The sum of a request's numbers."""

    result: float


streaming = StreamingAPI(title="Calculator", version="1.0.0")


@streaming.publish("/sum", reply=SumResult, reply_address="$message.payload#/reply_to")
async def add(event: Sum) -> SumResult:
    """Add the numbers: the sum goes back to the sender and to the topic named in reply_to."""
    return SumResult(result=sum(event.numbers))


@streaming.subscribe("/results/{client}")
async def results(event: SumResult, client: str) -> SumResult:
    """Every result for one client."""
    return event


app = FastAPI()
streaming.init_app(app)
