"""The example's payloads: what flows on each topic, with the docs that AsyncAPI shows."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class Quote(BaseModel):
    """The latest price of one stock."""

    symbol: str = Field(examples=["AAPL"], description="Ticker symbol.")
    price: float = Field(gt=0, examples=[187.12], description="Last trade price in USD.")
    time: datetime = Field(description="When the price was observed (UTC).")


class OrderRequest(BaseModel):
    """An order a client places."""

    symbol: str = Field(min_length=1, max_length=12, examples=["AAPL"])
    side: Literal["buy", "sell"]
    quantity: int = Field(gt=0, le=1_000_000, examples=[10])
    limit_price: float | None = Field(default=None, gt=0, description="None for a market order.")


class Order(OrderRequest):
    """An order as the back office sees it, once accepted."""

    id: str = Field(description="Order id given by the server.")
    status: Literal["accepted"] = "accepted"
    placed_at: datetime
    placed_by: str = Field(description="E-mail of the user who placed the order.")


class Candle(BaseModel):
    """One minute of one stock's prices: open, high, low and close (a candlestick)."""

    symbol: str = Field(examples=["AAPL"])
    start: datetime = Field(description="When the minute began (UTC).")
    end: datetime = Field(description="When the minute ends (UTC).")
    open: float
    high: float
    low: float
    close: float
    final: bool = Field(description="False while the minute is still running (an update).")
