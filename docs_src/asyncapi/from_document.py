"""A streaming API made from an AsyncAPI document, with one handler added in code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from fastapi_streaming import StreamingAPI
from fastapi_streaming.security import JWTAuthorizer

streaming = StreamingAPI.from_asyncapi(
    Path(__file__).with_name("market.yaml"),
    # The document says which scopes each operation needs; the authorizer checks tokens.
    authorizer=JWTAuthorizer(key=os.environ["JWT_KEY"]),
)


@streaming.subscribe("/quotes/{symbol}")
async def round_prices(event: dict[str, Any], symbol: str) -> dict[str, Any] | None:
    """Quotes with prices rounded to cents; quotes for other symbols are dropped."""
    if event["symbol"] != symbol:
        return None
    return {**event, "price": round(event["price"], 2)}


app = FastAPI()
streaming.init_app(app)
