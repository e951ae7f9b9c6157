"""Chat rooms with the operations console, usage analytics and webhooks.

Run it with ``JWT_SECRET=... uvicorn docs_src.console.app:app`` and open
``/streams/console?access_token=<a token with the streams:admin scope>``.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from fastapi_streaming import Analytics, ConsoleSettings, StreamingAPI, WebSubSettings
from fastapi_streaming.limits import Limits, Plan, PlanByClaim
from fastapi_streaming.security import JWTAuthorizer

authorizer = JWTAuthorizer(key=os.environ["JWT_SECRET"], algorithms=["HS256"])
# APIs that share one Redis keep apart by namespace: analytics keys, the console's channel.
NAMESPACE = os.environ.get("STREAMS_NAMESPACE", "rooms")

streaming = StreamingAPI(
    title="Rooms",
    # redis://... when the app runs on several workers: analytics then count in the same
    # Redis, and the console shows every worker and can disconnect a principal on all.
    broker=os.environ.get("BROKER_URL", "memory://"),
    authorizer=authorizer,
    # The token's `plan` claim picks the plan: "free" (the default) or "pro".
    limits=Limits(
        plan=PlanByClaim(
            [
                Plan(name="free", quota="1000/minute", publish_rate=5, burst=10),
                Plan(name="pro", quota="100000/minute"),
            ],
            default="free",
        ),
        storage=os.environ.get("LIMITS_STORAGE", "memory://"),
    ),
    websub=WebSubSettings(
        database_url=os.environ.get("WEBSUB_DATABASE_URL", "sqlite+aiosqlite:///websub.db"),
        allow_networks=("127.0.0.1/32",),  # the examples' subscribers run on this machine
    ),
    # Both are on by default; apart from the namespace, these are their defaults.
    analytics=Analytics(bucket_seconds=60, retention=24 * 3600, namespace=NAMESPACE),
    console=ConsoleSettings(admin_scope="streams:admin", channel=f"{NAMESPACE}.console"),
)


@streaming.subscribe("/rooms/{room}", scopes=["rooms:read"])
async def messages(event: dict[str, Any], room: str) -> dict[str, Any]:
    """The messages of one room."""
    return event


@streaming.publish("/rooms/{room}", scopes=["rooms:write"])
async def post_message(event: dict[str, Any], room: str) -> dict[str, Any]:
    """Post a message to a room."""
    return event


app = FastAPI()
streaming.init_app(app)
