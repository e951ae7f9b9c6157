"""The direct Redis connection the Redis backends publish on, against the real Redis.

It writes each command in its caller's step and pairs Redis's replies with the callers in the
order the commands went out: concurrent callers each get their own reply, an error reply goes
to its caller only, a stuck or killed connection fails every caller at once and is reported,
and a command costs a few turns of the event loop, not the nine of a redis-py pipeline.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from fastapi_streaming.brokers.redis_direct import DirectConnection
from tests.support.brokers import RedisProcess

pytestmark = pytest.mark.redis

URL = "redis://127.0.0.1:6379"


class Losses:
    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def __call__(self, error: BaseException) -> None:
        self.errors.append(error)


async def test_concurrent_callers_each_get_their_own_reply() -> None:
    direct = DirectConnection(URL, Losses())
    await direct.connect()
    prefix = f"direct-{uuid.uuid4().hex}"
    try:
        keys = [f"{prefix}:{n}" for n in range(200)]
        # INCRBY returns the amount on a new key: every caller must see its own amount back.
        replies = await asyncio.gather(
            *(direct.execute("INCRBY", key, n + 1) for n, key in enumerate(keys))
        )
        assert replies == [n + 1 for n in range(200)]
    finally:
        await direct.execute("DEL", *keys)
        await direct.close()


async def test_every_kind_of_reply_is_read_whole_however_the_socket_splits_it() -> None:
    direct = DirectConnection(URL, Losses())
    await direct.connect()
    key = f"direct-{uuid.uuid4().hex}"
    big = b"x" * 300_000  # arrives in many reads
    try:
        assert await direct.execute("PING") == b"PONG"  # simple string
        assert await direct.execute("RPUSH", key, "a", big, "") == 3  # integer
        assert await direct.execute("GET", f"{key}:missing") is None  # null bulk string
        assert await direct.execute("LRANGE", key, 0, -1) == [b"a", big, b""]  # array
        assert await direct.execute("LINDEX", key, 1) == big  # bulk string
        entry = await direct.execute("XADD", f"{key}:s", "MAXLEN", "~", 10, "*", "f", "v")
        assert isinstance(entry, bytes) and b"-" in entry
    finally:
        await direct.execute("DEL", key, f"{key}:s")
        await direct.close()


async def test_the_url_s_password_and_database_are_used() -> None:
    redis = RedisProcess(password="s3cret").start()
    try:
        direct = DirectConnection(f"{redis.url}/3", Losses())
        await direct.connect()
        try:
            assert await direct.execute("SET", "where", "db3") == b"OK"
        finally:
            await direct.close()
        check = Redis.from_url(f"{redis.url}/3")
        assert await check.get("where") == b"db3"
        await check.aclose()
        with pytest.raises(ResponseError, match=r"WRONGPASS|invalid"):
            wrong = DirectConnection(redis.url.replace("s3cret", "wrong"), Losses())
            await wrong.connect()
    finally:
        redis.stop()


async def test_an_error_reply_goes_to_its_caller_only() -> None:
    direct = DirectConnection(URL, losses := Losses())
    await direct.connect()
    try:
        before, failed, after = await asyncio.gather(
            direct.execute("PING"),
            direct.execute("NOSUCHCOMMAND"),
            direct.execute("ECHO", "still here"),
            return_exceptions=True,
        )
        assert before == b"PONG"
        assert isinstance(failed, ResponseError)
        assert after == b"still here"
        assert losses.errors == []
    finally:
        await direct.close()


async def test_a_killed_connection_fails_the_waiting_callers_and_is_reported() -> None:
    direct = DirectConnection(URL, losses := Losses())
    await direct.connect()
    admin = Redis.from_url(URL)
    try:
        name = f"direct-{uuid.uuid4().hex}"
        await direct.execute("CLIENT", "SETNAME", name)
        blocked = asyncio.ensure_future(direct.execute("BLPOP", f"{name}:nothing", 0))
        await asyncio.sleep(0.2)
        clients = [c for c in await admin.client_list() if c.get("name") == name]
        assert len(clients) == 1
        await admin.execute_command("CLIENT", "KILL", "ID", clients[0]["id"])
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(blocked, 5)
        assert len(losses.errors) == 1
        with pytest.raises(ConnectionError):
            await direct.execute("PING")
    finally:
        await admin.aclose()
        await direct.close()


async def test_a_stuck_redis_fails_the_connection_after_the_timeout() -> None:
    # A Redis of its own: the shared one must not stall other tests' clients while paused.
    redis = RedisProcess().start()
    url = f"redis://127.0.0.1:{redis.port}"
    direct = DirectConnection(url, losses := Losses(), timeout=0.5)
    await direct.connect()
    admin = Redis.from_url(url)
    try:
        assert await direct.execute("PING") == b"PONG"
        await admin.execute_command("CLIENT", "PAUSE", 3_000, "ALL")
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            await direct.execute("PING")
        assert time.monotonic() - started < 2.5  # the watchdog, not Redis's unpause
        assert len(losses.errors) == 1 and isinstance(losses.errors[0], TimeoutError)
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
        await direct.close()
        redis.stop()


async def test_a_command_costs_a_few_turns_of_a_busy_event_loop() -> None:
    """With every turn of the loop taking 2 ms (a loop busy writing to a thousand clients),
    a reply is back within three turns: the command is written at once, the reply read at the
    next poll, and the caller resumes. Four when commands waited a turn to go out together;
    a redis-py pipeline took nine."""
    direct = DirectConnection(URL, Losses())
    await direct.connect()
    turns = 0
    busy = True

    def turn() -> None:
        nonlocal turns
        turns += 1
        time.sleep(0.002)  # Redis's reply is on the socket by the next turn
        if busy:
            asyncio.get_running_loop().call_soon(turn)

    try:
        await direct.execute("PING")
        asyncio.get_running_loop().call_soon(turn)
        started = turns
        for _ in range(20):
            await direct.execute("PUBLISH", f"direct-{uuid.uuid4().hex}", "x")
        assert (turns - started) / 20 <= 3.5
    finally:
        busy = False
        await direct.close()
