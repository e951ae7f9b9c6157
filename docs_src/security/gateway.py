"""Tokens from an API gateway or identity provider, checked against its published keys."""

from __future__ import annotations

import os

from fastapi import FastAPI
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI
from fastapi_streaming.security import JWTAuthorizer, Principal

authorizer = JWTAuthorizer(
    jwks_url=os.environ.get("JWKS_URL", "https://login.example.com/.well-known/jwks.json"),
    algorithms=["RS256", "ES256"],
    audience="market-api",
    issuer=os.environ.get("TOKEN_ISSUER", "https://login.example.com/"),
    scope_claim="scope",  # "scp" for issuers that write a list there
    leeway=30,  # seconds of clock skew between the issuer and this server
)
streaming = StreamingAPI(title="Market data", authorizer=authorizer)


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
    """The client's principal: who it is, its scopes, when its token expires."""
    return PlacedOrder(**event.model_dump(), placed_by=principal.subject)


@streaming.subscribe("/orders", scopes=["orders:read"])
async def order_book(event: PlacedOrder) -> PlacedOrder:
    return event


app = FastAPI()
streaming.init_app(app)
