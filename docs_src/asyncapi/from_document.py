"""A streaming API made from an AsyncAPI document, with one handler added in code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from fastapi_streaming import StreamingAPI

streaming = StreamingAPI.from_asyncapi(Path(__file__).with_name("market.yaml"))


@streaming.subscribe("/quotes/{symbol}")
async def round_prices(event: dict[str, Any], symbol: str) -> dict[str, Any] | None:
    """Quotes with prices rounded to cents; quotes for other symbols are dropped."""
    if event["symbol"] != symbol:
        return None
    return {**event, "price": round(event["price"], 2)}


app = FastAPI()
streaming.init_app(app)
