from pydantic import BaseModel

from fastapi_streaming import StreamingAPI
from fastapi_streaming.security import JWTAuthorizer


class Quote(BaseModel):
    symbol: str
    price: float


class Order(BaseModel):
    symbol: str
    quantity: int


streaming = StreamingAPI(authorizer=JWTAuthorizer(key="change-me-to-a-32-byte-secret-key"))


@streaming.subscribe("/stocks/{symbol}", scopes=["stocks:read"])
async def quotes(event: Quote, symbol: str) -> Quote:
    return event


@streaming.publish("/orders", scopes=["orders:write"])
async def place_order(event: Order) -> Order:
    return event


@streaming.subscribe("/orders", scopes=["orders:read"])
async def order_book(event: Order) -> Order:
    return event
