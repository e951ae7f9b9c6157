"""The app: configuration and wiring only; the topics live in their routers."""

from __future__ import annotations

import os

from fastapi import FastAPI

from fastapi_streaming import StreamingAPI
from fastapi_streaming.security import JWTAuthorizer

from .routers import orders, stocks

streaming = StreamingAPI(
    title="Trading desk",
    broker=os.environ.get("BROKER_URL", "memory://"),
    authorizer=JWTAuthorizer(key=os.environ.get("JWT_KEY", "change me: a long, random secret")),
)
streaming.include_router(stocks.router)
streaming.include_router(orders.router, prefix="/v1")

app = FastAPI()
streaming.init_app(app)
