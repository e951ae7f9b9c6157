from pydantic import BaseModel

from fastapi_streaming import StreamingAPI
from fastapi_streaming.security import JWTAuthorizer, Principal


class Order(BaseModel):
    symbol: str
    quantity: int


class PlacedOrder(Order):
    placed_by: str


streaming = StreamingAPI(authorizer=JWTAuthorizer(key="change-me-to-a-32-byte-secret-key"))


@streaming.publish("/orders", scopes=["orders:write"])
async def place_order(event: Order, principal: Principal) -> PlacedOrder:
    return PlacedOrder(**event.model_dump(), placed_by=principal.subject)
