"""An app that uses every feature the AsyncAPI document describes.

Address convertors of every kind, both modes with shared and distinct messages, an explicit
broker channel, overflow policy and queue size, scopes, a dependency, payloads pydantic writes
with 2020-12 keywords (tuples, discriminated unions, integer enums), ``Field`` metadata and
examples, and full ``info``.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from fastapi_streaming import StreamingAPI
from fastapi_streaming.security import JWTAuthorizer


class Money(BaseModel):
    """An amount in one currency."""

    amount: float = Field(ge=0, description="How much.", examples=[12.5])
    currency: str = Field(pattern="^[A-Z]{3}$", examples=["USD"])


class Quote(BaseModel):
    """The latest price of one stock."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"symbol": "AAPL", "price": {"amount": 187.1, "currency": "USD"}}]
        }
    )

    symbol: str = Field(description="Ticker symbol.", examples=["AAPL"])
    price: Money


class OrderRequest(BaseModel):
    """An order a client places."""

    symbol: str = Field(min_length=1, max_length=12)
    quantity: int = Field(gt=0, le=1_000_000)
    limit: Money | None = None


class Order(OrderRequest):
    """An order once accepted."""

    id: str
    placed_at: datetime


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Temperature(BaseModel):
    kind: Literal["temperature"] = "temperature"
    celsius: float


class Humidity(BaseModel):
    kind: Literal["humidity"] = "humidity"
    percent: float = Field(ge=0, le=100)


class Reading(BaseModel):
    """One reading of a device."""

    value: Annotated[Temperature | Humidity, Field(discriminator="kind")]
    position: tuple[float, float] = Field(description="Latitude and longitude.")
    priority: Priority = Priority.LOW


class ChatMessage(BaseModel):
    text: str = Field(max_length=500)
    author: str = "anonymous"


streaming = StreamingAPI(
    title="Every feature",
    version="2.3.4",
    description="An API that uses every feature of fastapi-streaming's AsyncAPI document.",
    terms_of_service="https://example.com/terms",
    contact={"name": "API team", "url": "https://example.com/team", "email": "api@example.com"},
    license_info={"name": "Apache 2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
    tags=[{"name": "markets", "description": "Market data."}, {"name": "chat"}],
    external_docs={"url": "https://example.com/docs", "description": "The user guide."},
    authorizer=JWTAuthorizer(key="a test key that is long enough for HS256"),
)


@streaming.subscribe(
    "/stocks/{symbol}",
    scopes=["stocks:read"],
    channel="market.quotes.{symbol}",
    overflow="latest",
    max_queue=50,
    summary="Quotes of one symbol.",
)
async def quotes(event: Quote, symbol: str) -> Quote:
    """Live quotes; a client that falls behind gets the latest price."""
    return event


@streaming.publish("/stocks/{symbol}", scopes=["stocks:write"])
async def publish_quote(event: Quote, symbol: str) -> Quote:
    """Feeds publish quotes here."""
    return event


def room_name(room_id: int) -> str:
    return f"room-{room_id}"


@streaming.subscribe("/rooms/{room_id:int}", scopes=["chat:read"])
async def room(event: ChatMessage, room_id: int) -> ChatMessage:
    """Messages of one chat room."""
    return event


@streaming.publish("/rooms/{room_id:int}", scopes=["chat:write", "chat:read"])
async def post(event: ChatMessage, room_id: int, name: str = Depends(room_name)) -> ChatMessage:
    """Post a message; it is signed with the room's name."""
    return ChatMessage(text=event.text, author=f"{event.author}@{name}")


@streaming.publish("/orders")
async def place_order(event: OrderRequest) -> Order:
    """Place an order."""
    return Order(**event.model_dump(), id="x", placed_at=datetime.now())


@streaming.subscribe("/orders")
async def orders(event: Order) -> Order | None:
    """Accepted orders."""
    return event


@streaming.subscribe("/devices/{device_id:uuid}/readings")
async def readings(event: list[Reading], device_id: uuid.UUID) -> list[Reading]:
    """Batches of readings of one device."""
    return event


@streaming.subscribe("/thresholds/{level:float}")
async def thresholds(event: dict[str, Any], level: float) -> dict[str, Any]:
    return event


@streaming.subscribe("/files/{path:path}", overflow="drop_oldest")
async def files(event: dict[str, Any], path: str) -> dict[str, Any]:
    """Changes below one folder."""
    return event


@streaming.publish("/audit")
async def audit(event):  # type: ignore[no-untyped-def]
    """Anything at all; no payload type."""
    return event


app = FastAPI()
streaming.init_app(app)
