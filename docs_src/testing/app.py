from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI


class Quote(BaseModel):
    symbol: str
    price: float


class Order(BaseModel):
    symbol: str
    quantity: int


class PlacedOrder(Order):
    trader: str


bearer = HTTPBearer()


async def current_trader(
    scopes: SecurityScopes, credentials: HTTPAuthorizationCredentials = Depends(bearer)
) -> str:
    """Look the token up (here: a fixed table) and check it holds the scopes asked for."""
    traders = {"alice-token": ("alice", {"orders:write"}), "bob-token": ("bob", set())}
    trader, granted = traders.get(credentials.credentials, ("", set()))
    if not trader or not set(scopes.scopes) <= granted:
        raise HTTPException(403, f"needs {scopes.scope_str}")
    return trader


def exchange_rate() -> float:
    """In production: asks a rates service."""
    raise RuntimeError("no rates service in this example")


streaming = StreamingAPI(title="Market data", version="1.0.0")


@streaming.subscribe("/stocks/{symbol}")
async def quotes(event: Quote, symbol: str) -> Quote:
    return event


@streaming.publish("/stocks/{symbol}")
async def publish_quote(
    event: Quote, symbol: str, rate: Annotated[float, Depends(exchange_rate)]
) -> Quote:
    return Quote(symbol=event.symbol, price=round(event.price * rate, 2))


@streaming.subscribe("/orders")
async def order_book(event: PlacedOrder) -> PlacedOrder:
    return event


@streaming.publish("/orders")
async def place_order(
    event: Order, trader: Annotated[str, Security(current_trader, scopes=["orders:write"])]
) -> PlacedOrder:
    return PlacedOrder(**event.model_dump(), trader=trader)


app = FastAPI()
streaming.init_app(app)
