"""Tokens and calls for the console tests (docs_src/console/app.py over real servers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

SECRET = "a-secret-of-at-least-thirty-two-bytes-for-hs256"
ADMIN_SCOPE = "streams:admin"
USER_SCOPES = "rooms:read rooms:write"


def token(sub: str, scope: str = USER_SCOPES, **claims: Any) -> str:
    payload = {"sub": sub, "scope": scope, "exp": int(time.time()) + 600, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


def admin_headers(sub: str = "operator") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, ADMIN_SCOPE)}"}


def bearer(sub: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, **claims)}"}


async def snapshot(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        answer = await http.get("/streams/admin/snapshot", headers=admin_headers())
    assert answer.status_code == 200, answer.text
    board: dict[str, Any] = answer.json()
    return board


async def eventually(
    read: Callable[[], Any], check: Callable[[Any], bool], timeout: float = 15, what: str = ""
) -> Any:
    """Read until ``check`` holds (polling a live figure; not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}; last: {value!r}")
        await asyncio.sleep(0.1)
