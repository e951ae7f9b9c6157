"""Stock quotes and orders, streamed to browsers: ``uvicorn example_app.main:app``.

- ``/stocks/{symbol}``: live quotes from a simulated feed (subscribe, scope ``stocks:read``).
- ``/stocks/{symbol}/candles/1m``: one-minute candles derived from the quotes, computed once
  per deployment, updated every second while the minute runs (``stocks:read``).
- ``/orders``: clients place orders (publish, ``orders:write``); a back-office view follows them
  (subscribe, ``orders:read``).
- ``/tables/order_book``: on PostgreSQL, the order book table as a change stream (subscribe,
  ``orders:read``): see :mod:`example_app.orderbook`.
- ``/auth/register`` and ``/auth/jwt/login``: fastapi-users' own routes; the login form's
  ``scope`` field asks for scopes (all of the user's when it names none).

Every topic is offered over WebSocket, Server-Sent Events and WebSub (webhooks: the hub at
``/streams/websub/hub``), and publish topics over HTTP POST.

``BROKER_URL`` picks the broker (``memory://`` by default, ``redis://127.0.0.1:6379`` to run
several workers); ``WEBSUB_DATABASE_URL`` where the hub keeps subscriptions (a SQLite file by
default). ``WEBSUB_ALLOW_LOOPBACK=1`` lets the hub call back subscribers on this machine
(127.0.0.0/8, ::1), which ``make run`` turns on so the WebSub tutorial works on one machine.
It is off unless set: a deployed hub must never call its own host's private services.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

from fastapi_streaming import StreamingAPI, WebSubSettings
from fastapi_streaming.processing import Reduce, Tumbling, Window
from fastapi_streaming.security import Principal

from . import orderbook
from .feed import PriceFeed
from .models import Candle, Order, OrderRequest, Quote
from .users import (
    UserCreate,
    UserRead,
    auth_backend,
    authorizer,
    create_db_and_tables,
    fastapi_users,
)

LOOPBACK = ("127.0.0.0/8", "::1/128")


def websub_settings() -> WebSubSettings:
    """The hub's settings; loopback callbacks only when ``WEBSUB_ALLOW_LOOPBACK=1`` says so."""
    allow_loopback = os.environ.get("WEBSUB_ALLOW_LOOPBACK") == "1"
    return WebSubSettings(
        database_url=os.environ.get("WEBSUB_DATABASE_URL", "sqlite+aiosqlite:///./websub.sqlite3"),
        allow_networks=LOOPBACK if allow_loopback else (),
    )


streaming = StreamingAPI(
    title="Market data",
    version="1.0.0",
    description="Live stock quotes and an order flow, over WebSocket, SSE, WebSub and HTTP.",
    broker=os.environ.get("BROKER_URL", "memory://"),
    authorizer=authorizer,
    websub=websub_settings(),
)


@streaming.subscribe("/stocks/{symbol}", scopes=["stocks:read"], overflow="latest")
async def quotes(event: Quote, symbol: str) -> Quote:
    """Live quotes for one symbol. A client that falls behind gets the latest price."""
    return event


#: Open, high, low, close of the prices so far.
OHLC = tuple[float, float, float, float]


def ohlc(candle: OHLC | None, quote: Quote) -> OHLC:
    price = quote.price
    if candle is None:
        return (price, price, price, price)
    return (candle[0], max(candle[1], price), min(candle[2], price), price)


@streaming.derive(
    "/stocks/{symbol}/candles/1m",
    source="/stocks/{symbol}",
    scopes=["stocks:read"],
    window=Tumbling(minutes=1),
    aggregate=Reduce(ohlc),
    time=lambda quote: quote.time,
    emit="updates",
    min_interval=1.0,
)
def candles(window: Window[OHLC | None], symbol: str) -> Candle | None:
    """One-minute candles of one stock, updated every second until the minute is over."""
    if window.value is None:
        return None
    open_, high, low, close = window.value
    return Candle(
        symbol=symbol,
        start=datetime.fromtimestamp(window.start, timezone.utc),
        end=datetime.fromtimestamp(window.end, timezone.utc),
        open=open_,
        high=high,
        low=low,
        close=close,
        final=window.final,
    )


@streaming.publish("/orders", scopes=["orders:write"])
async def place_order(event: OrderRequest, principal: Principal) -> Order:
    """Place an order; the server gives it an id, records who placed it, and accepts it."""
    order = Order(
        **event.model_dump(),
        id=uuid.uuid4().hex[:12],
        placed_at=datetime.now(timezone.utc),
        placed_by=principal.user.email,
    )
    if orderbook.ORDER_BOOK_DSN is not None:
        await orderbook.record(order)  # the table's change stream shows it too
    return order


@streaming.subscribe("/orders", scopes=["orders:read"])
async def order_book(event: Order) -> Order:
    """Every accepted order, for the back office."""
    return event


if orderbook.ORDER_BOOK_DSN is not None:
    orderbook.declare(streaming, orderbook.ORDER_BOOK_DSN)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await create_db_and_tables()
    interval = float(os.environ.get("FEED_INTERVAL", "0.5"))
    feed = asyncio.create_task(PriceFeed(streaming, interval=interval).run())
    yield
    feed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await feed


app = FastAPI(title="Market data", lifespan=lifespan)
app.include_router(fastapi_users.get_register_router(UserRead, UserCreate), prefix="/auth")
app.include_router(fastapi_users.get_auth_router(auth_backend), prefix="/auth/jwt")
streaming.init_app(app)

INDEX = Path(__file__).parent / "static" / "index.html"


@app.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(INDEX)
