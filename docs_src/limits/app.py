"""Ticks with a plan: each principal may publish 5 events per minute."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from fastapi_streaming import StreamingAPI
from fastapi_streaming.limits import Limits, Plan
from fastapi_streaming.security import JWTAuthorizer

authorizer = JWTAuthorizer(key=os.environ["JWT_SECRET"], algorithms=["HS256"])

# Counters are kept per principal: the token's `sub`. Limits(storage="redis://...") shares
# them between workers and hosts; in memory they hold for one process.
basic = Plan(name="basic", publish_rate="5/minute")

streaming = StreamingAPI(
    title="Ticks",
    authorizer=authorizer,
    limits=Limits(plan=basic, storage=os.environ.get("LIMITS_STORAGE", "memory://")),
    metrics_url="/metrics",
)


@streaming.publish("/ticks")
async def publish_tick(event: dict[str, Any]) -> dict[str, Any]:
    return event


@streaming.subscribe("/ticks")
async def ticks(event: dict[str, Any]) -> dict[str, Any]:
    return event


app = FastAPI()
streaming.init_app(app)
