"""The app the WebSub tests run, in the test process (``make_app``) or as a server (``app``).

As a server it reads its configuration from the environment: ``BROKER_URL``, ``DATABASE_URL``,
``TABLE_PREFIX``, ``CHANNEL_PREFIX`` and a few WebSub timings.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from fastapi_streaming import Forbidden, Mode, StreamingAPI, Topic, Unauthorized
from fastapi_streaming.security import AccessControl, Principal
from fastapi_streaming.websub import WebSubSettings


class Note(BaseModel):
    text: str
    seq: int = 0


class GuardedAccess(AccessControl):
    """Topics under ``/private`` are refused; ``/members`` needs an ``Authorization`` header."""

    async def check(
        self, connection: HTTPConnection, accesses: Sequence[tuple[Topic, Mode]]
    ) -> Principal | None:
        for topic, _ in accesses:
            if topic.address.startswith("/members") and "authorization" not in connection.headers:
                raise Unauthorized(
                    "A bearer token is required.", headers={"WWW-Authenticate": "Bearer"}
                )
            if topic.address.startswith("/private"):
                raise Forbidden(f"Subscribing to {topic.address} needs the notes:private scope.")
        return None


def make_app(
    settings: WebSubSettings, *, broker: str = "memory://", channel_prefix: str = ""
) -> tuple[FastAPI, StreamingAPI]:
    streaming = StreamingAPI(title="WebSub test app", broker=broker, websub=settings)
    streaming.access = GuardedAccess(())

    @streaming.subscribe("/notes/{room}", channel=channel_prefix + "notes.{room}")
    async def notes(event: Note, room: str) -> Note:
        return event

    @streaming.publish("/notes/{room}")
    async def post_note(event: Note, room: str) -> Note:
        return event

    @streaming.subscribe("/private/{room}", channel=channel_prefix + "private.{room}")
    async def private(event: Note, room: str) -> Note:
        return event

    @streaming.subscribe("/members/{room}", channel=channel_prefix + "members.{room}")
    async def members(event: Note, room: str) -> Note:
        return event

    @streaming.publish("/audit", channel=channel_prefix + "audit")
    async def audit(event: Note) -> Note:
        return event

    app = FastAPI()
    streaming.init_app(app)

    @app.post("/test/burst")
    async def burst(address: str, count: int) -> dict[str, int]:
        """Emit ``count`` numbered notes, yielding to the loop between them like a feed."""
        for seq in range(count):
            await streaming.emit(address, {"text": f"note {seq}", "seq": seq})
            await asyncio.sleep(0)
        return {"count": count}

    @app.get("/test/websub")
    async def websub_stats() -> dict[str, Any]:
        hub = streaming.websub
        assert hub is not None
        running = hub.running
        return {
            "pid": os.getpid(),
            "joined": sorted(running.intake.joined),
            "recorded": running.intake.recorded,
            "delivered": running.worker.delivered,
            "counts": await running.repo.delivery_counts(),
        }

    return app, streaming


def settings_from_env() -> WebSubSettings:
    env = os.environ
    return WebSubSettings(
        database_url=env.get("DATABASE_URL", "sqlite+aiosqlite:///websub-test.sqlite3"),
        table_prefix=env.get("TABLE_PREFIX", "websub_"),
        allow_networks=("127.0.0.1/32", *filter(None, env.get("ALLOW_NETWORKS", "").split(","))),
        lease_min=1,
        retry_base=float(env.get("RETRY_BASE", "0.2")),
        retry_max=float(env.get("RETRY_MAX", "1")),
        max_attempts=int(env.get("MAX_ATTEMPTS", "50")),
        delivery_timeout=float(env.get("DELIVERY_TIMEOUT", "2")),
        poll_interval=float(env.get("POLL_INTERVAL", "0.2")),
        sync_interval=float(env.get("SYNC_INTERVAL", "0.5")),
        rate_limit=10_000,
    )


if os.environ.get("DATABASE_URL"):
    app, streaming = make_app(
        settings_from_env(),
        broker=os.environ.get("BROKER_URL", "memory://"),
        channel_prefix=os.environ.get("CHANNEL_PREFIX", ""),
    )
