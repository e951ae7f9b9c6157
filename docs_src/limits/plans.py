"""Plans chosen by a token claim, counted in Redis, with a router and a topic of their own."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from fastapi_streaming import StreamingAPI, StreamingRouter
from fastapi_streaming.limits import Limits, Plan, PlanByClaim
from fastapi_streaming.security import JWTAuthorizer

free = Plan(
    name="free",
    quota="10000/day",  # events: messages both ways, SSE events, deliveries, publishes
    max_duration=3600,  # seconds a connection may stay open
    publish_rate=1,  # publishes per second...
    burst=10,  # ...of which 10 may come at once
    max_connections=2,
)
gold = Plan(name="gold", quota="1000000/day", publish_rate=50, burst=200, max_connections=20)

streaming = StreamingAPI(
    title="Market data",
    authorizer=JWTAuthorizer(key=os.environ["JWT_SECRET"], algorithms=["HS256"]),
    limits=Limits(
        # The token's `plan` claim names the plan; tokens without one get "free".
        plan=PlanByClaim([free, gold], claim="plan", default="free"),
        # Shared by every worker and host that uses this Redis; "memory://" for one process.
        storage=os.environ.get("LIMITS_STORAGE", "memory://"),
    ),
)


@streaming.subscribe("/stocks/{symbol}")
async def quotes(event: dict[str, Any], symbol: str) -> dict[str, Any]:
    return event


# Every topic of this router counts against one plan of its own, whatever the token says.
partners = StreamingRouter(prefix="/partners", plan=Plan(name="partners", quota="500/hour"))


@partners.subscribe("/{partner}/orders")
async def partner_orders(event: dict[str, Any], partner: str) -> dict[str, Any]:
    return event


streaming.include_router(partners)


# A plan chosen by your own code: here, by the client's address.
def by_network(principal: Any, connection: Any) -> Plan | None:
    host = connection.client.host if connection.client else ""
    return None if host.startswith("10.") else Plan(name="outside", publish_rate="10/minute")


@streaming.publish("/orders", plan=by_network)
async def orders(event: dict[str, Any]) -> dict[str, Any]:
    return event


app = FastAPI()
streaming.init_app(app)
