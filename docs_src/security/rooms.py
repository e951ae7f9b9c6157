"""Scopes that name address parameters: a token for room 42 reaches room 42 only."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from fastapi_streaming import StreamingAPI
from fastapi_streaming.security import JWTAuthorizer

streaming = StreamingAPI(
    title="Chat",
    authorizer=JWTAuthorizer(key=os.environ["JWT_SECRET"], algorithms=["HS256"]),
)


# `{room}` is filled in from the concrete address: /rooms/42 needs "rooms:42:read".
@streaming.subscribe("/rooms/{room}", scopes=["rooms:{room}:read"])
async def messages(event: dict[str, Any], room: str) -> dict[str, Any]:
    return event


@streaming.publish("/rooms/{room}", scopes=["rooms:{room}:write"])
async def post_message(event: dict[str, Any], room: str) -> dict[str, Any]:
    return event


app = FastAPI()
streaming.init_app(app)
