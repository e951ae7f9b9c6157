"""The market-data topics: one router, declared where they belong."""

from __future__ import annotations

from pydantic import BaseModel

from fastapi_streaming import StreamingRouter

router = StreamingRouter(prefix="/stocks", tags=["market data"])


class Quote(BaseModel):
    symbol: str
    price: float


@router.subscribe("/{symbol}")
async def quotes(event: Quote, symbol: str) -> Quote:
    """Live quotes for one symbol."""
    return event


@router.publish("/{symbol}", scopes=["quotes:write"])
async def post_quote(event: Quote, symbol: str) -> Quote:
    """Feeds post quotes here."""
    return event
