from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import HTTPConnection

from fastapi_streaming.dependencies import plan_handler, solve

LOG: list[str] = []


def settings() -> dict[str, int]:
    LOG.append(f"settings in {threading.current_thread().name}")
    return {"factor": 3}


async def session(config: Annotated[dict[str, int], Depends(settings)]) -> AsyncIterator[str]:
    LOG.append("open")
    yield f"session*{config['factor']}"
    LOG.append("close")


def sync_generator() -> Iterator[str]:
    yield "sync"
    LOG.append("sync closed")


async def handler(
    event: int,
    room: int,
    db: str = Depends(session),
    config: dict[str, int] = Depends(settings),
    other: str = Depends(sync_generator),
) -> Any:
    LOG.append("handler")
    return (event * config["factor"], room, db, other)


async def test_dependencies_are_resolved_cached_and_cleaned_up() -> None:
    log = LOG
    log.clear()
    plan = plan_handler(handler, path_params=["room"])
    assert plan.event_param == "event" and plan.event_type is int
    async with AsyncExitStack() as stack:
        result = await solve(plan, event=2, params={"room": 7}, context=(), stack=stack)
        assert "close" not in log
    assert result == (6, 7, "session*3", "sync")
    assert log.count("settings in MainThread") == 0, "sync dependencies run in the thread pool"
    assert sum(entry.startswith("settings") for entry in log) == 1, "cached within one call"
    assert set(log[-2:]) == {"sync closed", "close"}, "generators are closed after the call"


async def test_connection_is_passed_by_annotation() -> None:
    async def handler(event: dict[str, Any], connection: HTTPConnection) -> Any:
        return connection.scope["path"]

    plan = plan_handler(handler, path_params=[])
    connection = HTTPConnection({"type": "http", "path": "/x", "headers": []})
    async with AsyncExitStack() as stack:
        assert await solve(plan, event={}, params={}, context=[connection], stack=stack) == "/x"


async def test_parameters_with_defaults_keep_them() -> None:
    async def handler(event: str, limit: int = 5) -> Any:
        return (event, limit)

    plan = plan_handler(handler, path_params=[])
    async with AsyncExitStack() as stack:
        assert await solve(plan, event="e", params={}, context=(), stack=stack) == ("e", 5)
