"""Calls to the counters' storage, bounded in time by the limiter instead of redis-py.

redis-py bounds each command with its ``socket_timeout`` (5 s by default), and on Python 3.11
and older it does so with ``asyncio.wait_for``, which runs the send in a task of its own: two
more turns of the event loop for every command. A publish under a plan waits for its charge
before it reaches the broker, and on a busy server every turn is long (it writes to every
client with events waiting), so those turns showed as publishes taking twice as long. The
limiter's Redis client therefore has no socket timeout, and every call the limiter makes is
bounded here with ``asyncio.timeout``, which needs no task.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

#: Seconds a call to the counters may take before they count as unreachable (what redis-py
#: would have waited).
STORAGE_TIMEOUT = 5.0

#: What the limiter's Redis client is opened with: the bound is :func:`bounded`'s.
CLIENT_OPTIONS: dict[str, object] = {"socket_timeout": None}


async def bounded(call: Awaitable[T]) -> T:
    """``await call``, or ``TimeoutError`` after :data:`STORAGE_TIMEOUT` seconds."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(STORAGE_TIMEOUT):
            return await call
    return await asyncio.wait_for(call, STORAGE_TIMEOUT)  # pragma: no cover - Python 3.10
