"""The app of the plans, per-address scopes and metrics tests.

Tokens are HS256 JWTs signed with ``JWT_SECRET``; their ``plan`` claim picks the plan, and a
token without one is unlimited (the tests' publisher). ``LIMITS_STORAGE`` and
``LIMITS_NAMESPACE`` say where the counters live, so tests never share them.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from fastapi_streaming import StreamingAPI, StreamingRouter
from fastapi_streaming.limits import Limits, Plan, PlanByClaim
from fastapi_streaming.security import JWTAuthorizer
from fastapi_streaming.websub import WebSubSettings

PLANS = [
    Plan(name="tiny", quota=os.environ.get("TINY_QUOTA", "6/minute")),
    Plan(name="short", max_duration=float(os.environ.get("SHORT_DURATION", "1.5"))),
    Plan(name="pair", max_connections=2),
    Plan(name="slow", publish_rate="2/minute"),
    Plan(name="bulk", quota=os.environ.get("BULK_QUOTA", "30/minute")),
]

streaming = StreamingAPI(
    title="Limits test app",
    broker=os.environ.get("BROKER_URL", "memory://"),
    authorizer=JWTAuthorizer(key=os.environ["JWT_SECRET"], algorithms=["HS256"]),
    limits=Limits(
        plan=PlanByClaim(PLANS, claim="plan"),
        storage=os.environ.get("LIMITS_STORAGE", "memory://"),
        namespace=os.environ.get("LIMITS_NAMESPACE", "limits-test"),
        flush_interval=float(os.environ.get("FLUSH_INTERVAL", "0.2")),
    ),
    metrics_url="/metrics",
    websub=WebSubSettings(
        database_url=os.environ["WEBSUB_DATABASE_URL"],
        allow_networks=("127.0.0.1/32",),
        poll_interval=0.1,
        sync_interval=0.2,
        retry_base=float(os.environ.get("WEBSUB_RETRY_BASE", "0.1")),
        retry_max=max(0.5, float(os.environ.get("WEBSUB_RETRY_BASE", "0.1"))),
        max_attempts=int(os.environ.get("WEBSUB_MAX_ATTEMPTS", "10")),
    )
    if "WEBSUB_DATABASE_URL" in os.environ
    else None,
)
PREFIX = os.environ.get("CHANNEL_PREFIX", "")


@streaming.subscribe("/feed/{name}", channel=PREFIX + "feed.{name}")
async def feed(event: dict[str, Any], name: str) -> dict[str, Any]:
    return event


@streaming.publish("/feed/{name}", channel=PREFIX + "feed.{name}")
async def publish_feed(event: dict[str, Any], name: str) -> dict[str, Any]:
    return event


@streaming.subscribe("/rooms/{room}", scopes=["rooms:{room}:read"], channel=PREFIX + "rooms.{room}")
async def room(event: dict[str, Any], room: str) -> dict[str, Any]:
    return event


@streaming.publish("/rooms/{room}", scopes=["rooms:{room}:write"], channel=PREFIX + "rooms.{room}")
async def say(event: dict[str, Any], room: str) -> dict[str, Any]:
    return event


# A topic with a plan of its own: one publish a minute for everybody, whatever the token says.
@streaming.publish("/special", plan=Plan(name="special", publish_rate="1/minute"))
async def special(event: dict[str, Any]) -> dict[str, Any]:
    return event


# A router whose topics share one plan.
grouped = StreamingRouter(prefix="/grouped", plan=Plan(name="grouped", publish_rate="2/minute"))


@grouped.publish("/{name}", channel=PREFIX + "grouped.{name}")
async def grouped_publish(event: dict[str, Any], name: str) -> dict[str, Any]:
    return event


streaming.include_router(grouped)

app = FastAPI()
streaming.init_app(app)


@app.get("/test/worker")
async def worker() -> dict[str, int]:
    """Which worker process answered (the multi-worker tests spread requests over them)."""
    return {"pid": os.getpid()}
