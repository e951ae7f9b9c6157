"""The app the security tests run: the example app's fastapi-users setup, plus what a matrix of
token cases needs.

Besides the example's ``jwt`` login (one-hour tokens), ``/auth/short/login`` issues tokens that
live ``SHORT_LIFETIME`` seconds (streams opened with them must end when they expire) and
``/auth/foreign/login`` issues tokens for another audience (signed with the same key, so only
the audience check can refuse them). ``/news`` is a public topic; ``/test/emit/...`` is
server-side code emitting events, as an operator's feed would. With ``WEBSUB_DATABASE_URL`` set,
the WebSub hub runs too, delivering to callbacks on 127.0.0.1.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_users import FastAPIUsers
from fastapi_users.authentication import AuthenticationBackend, BearerTransport
from pydantic import BaseModel

from example_app.users import (
    SECRET,
    User,
    UserCreate,
    UserRead,
    auth_backend,
    create_db_and_tables,
    get_user_manager,
)
from fastapi_streaming import StreamingAPI
from fastapi_streaming.security import Principal
from fastapi_streaming.security.users import FastAPIUsersAuthorizer, scoped_jwt_strategy
from fastapi_streaming.websub import WebSubSettings

short_backend = AuthenticationBackend(
    name="short",
    transport=BearerTransport(tokenUrl="/auth/short/login"),
    get_strategy=scoped_jwt_strategy(
        SECRET, lifetime_seconds=int(os.environ.get("SHORT_LIFETIME", "2"))
    ),
)
foreign_backend = AuthenticationBackend(
    name="foreign",
    transport=BearerTransport(tokenUrl="/auth/foreign/login"),
    get_strategy=scoped_jwt_strategy(SECRET, 3600, token_audience=["another-api"]),
)
fastapi_users = FastAPIUsers[User, uuid.UUID](
    get_user_manager, [auth_backend, short_backend, foreign_backend]
)

streaming = StreamingAPI(
    title="Secure test app",
    broker=os.environ.get("BROKER_URL", "memory://"),
    authorizer=FastAPIUsersAuthorizer(fastapi_users, auth_backend, scopes="scopes"),
    require_auth=os.environ.get("REQUIRE_AUTH") == "1",
    websub=WebSubSettings(
        database_url=os.environ["WEBSUB_DATABASE_URL"],
        allow_networks=("127.0.0.1/32",),
        lease_min=1,
        rate_limit=10_000,
        verify_timeout=5.0,
        delivery_timeout=2.0,
        retry_base=0.1,
        retry_max=0.5,
        poll_interval=0.1,
        sync_interval=0.2,
        cleanup_interval=0.5,
    )
    if "WEBSUB_DATABASE_URL" in os.environ
    else None,
)


class Quote(BaseModel):
    symbol: str
    price: float


class Order(BaseModel):
    symbol: str
    quantity: int


class PlacedOrder(Order):
    placed_by: str


@streaming.subscribe("/stocks/{symbol}", scopes=["stocks:read"])
async def quotes(event: Quote, symbol: str) -> Quote:
    return event


@streaming.publish("/orders", scopes=["orders:write"])
async def place_order(event: Order, principal: Principal) -> PlacedOrder:
    """The principal of the client that publishes is known to the handler."""
    return PlacedOrder(**event.model_dump(), placed_by=principal.user.email)


@streaming.subscribe("/orders", scopes=["orders:read"])
async def order_book(event: PlacedOrder) -> PlacedOrder:
    return event


@streaming.subscribe("/news")
async def news(event: dict[str, Any]) -> dict[str, Any]:
    return event


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await create_db_and_tables()
    yield


app = FastAPI(lifespan=lifespan)
app.include_router(fastapi_users.get_register_router(UserRead, UserCreate), prefix="/auth")
for backend in (auth_backend, short_backend, foreign_backend):
    app.include_router(fastapi_users.get_auth_router(backend), prefix=f"/auth/{backend.name}")
streaming.init_app(app)


@app.post("/test/emit/{address:path}")
async def emit(address: str, payload: dict[str, Any]) -> dict[str, str]:
    event = await streaming.emit("/" + address, payload)
    return {"id": event.id}
