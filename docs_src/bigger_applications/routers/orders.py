"""The order topics: every one needs the ``orders`` scope and is counted."""

from __future__ import annotations

from collections import Counter

from fastapi import Depends
from pydantic import BaseModel

from fastapi_streaming import StreamingRouter
from fastapi_streaming.security import Principal

HANDLED: Counter[str] = Counter()


def count_handled() -> None:
    """Runs before every handler of the router, like a FastAPI router dependency."""
    HANDLED["orders"] += 1


router = StreamingRouter(
    prefix="/orders",
    tags=["orders"],
    scopes=["orders"],  # added to the scopes of every operation of this router
    dependencies=[Depends(count_handled)],
)


class Order(BaseModel):
    symbol: str
    quantity: int


@router.publish("")
async def place(event: Order, principal: Principal) -> Order:
    """Place an order."""
    return event


@router.subscribe("")
async def order_feed(event: Order) -> Order:
    """Every order placed."""
    return event


@router.subscribe("/legacy", deprecated=True)
async def legacy_orders(event: Order) -> Order:
    """The old order feed: still served, marked deprecated in the AsyncAPI document."""
    return event
