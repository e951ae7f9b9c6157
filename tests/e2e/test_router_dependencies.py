"""A router's dependencies run before every handler it declares, on a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import Depends, FastAPI
from starlette.requests import HTTPConnection

from fastapi_streaming import Forbidden, StreamingAPI, StreamingRouter
from tests.support.clients import sse_stream
from tests.support.websub import running_app


def require_team(connection: HTTPConnection) -> None:
    if connection.headers.get("x-team") != "market":
        raise Forbidden("Only the market team may publish here.")


CALLS: list[str] = []


async def count_event() -> None:
    CALLS.append("router dependency")


async def test_router_dependencies_run_before_every_handler_over_real_http() -> None:
    CALLS.clear()
    router = StreamingRouter(prefix="/desk", dependencies=[Depends(count_event)])

    @router.publish("/orders", dependencies=[Depends(require_team)])
    async def orders(event: dict[str, Any]) -> dict[str, Any]:
        CALLS.append("publish handler")
        return event

    @router.subscribe("/orders")
    async def order_feed(event: dict[str, Any]) -> dict[str, Any]:
        CALLS.append("subscribe handler")
        return event

    streaming = StreamingAPI()
    streaming.include_router(router)
    app = FastAPI()
    streaming.init_app(app)

    async with running_app(app) as base_url:
        async with (
            sse_stream(base_url, "/streams/sse/desk/orders") as stream,
            httpx.AsyncClient(base_url=base_url, timeout=10) as http,
        ):
            refused = await http.post("/streams/publish/desk/orders", json={"id": 1})
            assert refused.status_code == 403
            assert "market team" in refused.json()["detail"]
            accepted = await http.post(
                "/streams/publish/desk/orders", json={"id": 2}, headers={"x-team": "market"}
            )
            assert accepted.status_code == 202
            await stream.wait_for(1)
            await asyncio.sleep(0.1)
            assert stream.data() == [{"id": 2}]
    assert CALLS == [
        "router dependency",  # the refused publish: the router's dependency ran first
        "router dependency",
        "publish handler",
        "router dependency",
        "subscribe handler",
    ]
