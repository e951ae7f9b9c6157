"""An app whose authenticator reports the layers a stream request passed through.

A request carrying ``x-show-layers`` is refused by the authenticator with an ``HTTPException``
(418) whose detail lists the modules of every frame on the stack that called it: the test
reads which of FastAPI's and Starlette's layers a stream request went through.
``WITH_MIDDLEWARE=1`` gives the app a middleware of its own (CORS).
"""

from __future__ import annotations

import os
import sys

from fastapi import FastAPI, HTTPException
from fastapi.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection

from fastapi_streaming import StreamingAPI
from fastapi_streaming.security import Principal


class LayerReporter:
    """Authenticates nobody; tells, on request, which modules' frames are below it."""

    async def authenticate(self, connection: HTTPConnection) -> Principal | None:
        if "x-show-layers" in connection.headers:
            frame = sys._getframe()
            modules = []
            while frame is not None:
                modules.append(frame.f_globals.get("__name__", "?"))
                frame = frame.f_back
            raise HTTPException(418, detail={"layers": modules}, headers={"x-layers": "1"})
        return None


streaming = StreamingAPI(title="Layers", broker="memory://", authorizer=LayerReporter())


@streaming.subscribe("/ticks")
async def ticks(event: dict[str, object]) -> dict[str, object]:
    return event


@streaming.publish("/ticks")
async def publish_tick(event: dict[str, object]) -> dict[str, object]:
    return event


app = FastAPI()
if os.environ.get("WITH_MIDDLEWARE") == "1":
    app.add_middleware(CORSMiddleware, allow_origins=["https://example.test"])
streaming.init_app(app)
