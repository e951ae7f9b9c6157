"""What the PostgreSQL backend does beyond the conformance suite, against the real server."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from fastapi_streaming.brokers.builtin import postgres
from fastapi_streaming.brokers.connection import BrokerConnection
from fastapi_streaming.brokers.postgres import (
    IDENTIFIER_LIMIT,
    NOTIFY_LIMIT,
    TABLE,
    PostgresBackend,
    channel_identifier,
)
from fastapi_streaming.testing import Inbox

pytestmark = pytest.mark.postgres

POSTGRES = "postgres://postgres@127.0.0.1:5432/test"


@pytest.fixture
def channel() -> str:
    return f"pgtest.{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def backend() -> AsyncIterator[PostgresBackend]:
    backend = PostgresBackend(POSTGRES)
    await backend.connect()
    yield backend
    await backend.disconnect()


@pytest.fixture
async def inbox(backend: PostgresBackend) -> AsyncIterator[Inbox]:
    inbox = Inbox(backend)
    inbox.start()
    yield inbox
    await inbox.stop()


def test_the_builtin_postgres_schemes_use_this_backend() -> None:
    assert isinstance(postgres("postgresql://postgres@127.0.0.1/test"), PostgresBackend)


async def test_fifty_concurrent_publishes_all_succeed(
    backend: PostgresBackend, inbox: Inbox, channel: str
) -> None:
    await backend.subscribe(channel)
    results = await asyncio.gather(
        *(backend.publish(channel, f"message {n}") for n in range(50)), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures[:3]
    received = await inbox.take(channel, 50, timeout=10)
    assert sorted(received) == sorted(f"message {n}" for n in range(50))


async def test_payloads_around_the_notify_limit_arrive_in_order(
    backend: PostgresBackend, inbox: Inbox, channel: str
) -> None:
    """Small payloads go inline, large ones by reference; order holds across both."""
    payloads = [
        "a" * (NOTIFY_LIMIT - 1),  # the largest inline payload
        "b" * NOTIFY_LIMIT,  # the smallest by reference
        "small",
        "é" * (NOTIFY_LIMIT // 2),  # under the limit in characters, not in bytes
        "c" * 1024 * 1024,
    ]
    await backend.subscribe(channel)
    for payload in payloads:
        await backend.publish(channel, payload)
    assert await inbox.take(channel, len(payloads), timeout=10) == payloads


async def test_a_payload_that_looks_like_a_reference_arrives_as_sent(
    backend: PostgresBackend, inbox: Inbox, channel: str
) -> None:
    await backend.subscribe(channel)
    await backend.publish(channel, "@ref:1")
    assert await inbox.next(channel, timeout=10) == "@ref:1"


async def test_long_channel_names_are_hashed_not_merged(
    backend: PostgresBackend, inbox: Inbox
) -> None:
    prefix = f"pgtest.{uuid.uuid4().hex}." + "x" * IDENTIFIER_LIMIT
    first, second = f"{prefix}.first", f"{prefix}.second"
    assert len(channel_identifier(first).encode()) <= IDENTIFIER_LIMIT
    assert channel_identifier(first) != channel_identifier(second)
    await backend.subscribe(first)
    await backend.subscribe(second)
    await backend.publish(second, "to the second")
    await backend.publish(first, "to the first")
    assert await inbox.next(first, timeout=10) == "to the first"
    assert await inbox.next(second, timeout=10) == "to the second"
    await inbox.expect_nothing(first, seconds=0.3)


async def test_channel_names_are_quoted_safely(backend: PostgresBackend, inbox: Inbox) -> None:
    tag = uuid.uuid4().hex[:8]
    channel = f'Quotes"; DROP TABLE x; -- {tag} Zürich'
    await backend.subscribe(channel)
    await backend.publish(channel, "quoted")
    assert await inbox.next(channel, timeout=10) == "quoted"


async def test_native_notify_of_a_long_channel_uses_the_hashed_name(
    backend: PostgresBackend, inbox: Inbox
) -> None:
    channel = f"pgtest.{uuid.uuid4().hex}." + "y" * IDENTIFIER_LIMIT
    await backend.subscribe(channel)
    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute("SELECT pg_notify($1, $2)", channel_identifier(channel), "hi")
    finally:
        await connection.close()
    assert await inbox.next(channel, timeout=10) == "hi"


async def test_old_large_messages_are_deleted(channel: str) -> None:
    publisher = PostgresBackend(f"{POSTGRES}?retention=1")
    await publisher.connect()
    try:
        await publisher.publish(channel, "z" * (NOTIFY_LIMIT * 2))
    finally:
        await publisher.disconnect()
    connection = await asyncpg.connect(POSTGRES)
    try:
        count = f"SELECT count(*) FROM {TABLE} WHERE channel = $1"
        assert await connection.fetchval(count, channel) == 1
        await asyncio.sleep(1.5)
        cleaner = PostgresBackend(f"{POSTGRES}?retention=1")
        await cleaner.connect()  # cleans up as it connects
        await asyncio.sleep(0.5)
        await cleaner.disconnect()
        assert await connection.fetchval(count, channel) == 0
    finally:
        await connection.close()


async def test_a_killed_connection_is_raised_and_the_broker_connection_recovers(
    channel: str,
) -> None:
    """The server ends the backend's sessions; the process reconnects and receives again."""
    name = f"fs-{uuid.uuid4().hex[:12]}"
    backend = PostgresBackend(f"{POSTGRES}?application_name={name}")
    broker = BrokerConnection(backend, url=POSTGRES)
    await broker.connect()
    received: asyncio.Queue[str] = asyncio.Queue()
    try:
        await broker.subscribe(channel, lambda message: received.put_nowait(message.message))
        await broker.publish(channel, "before")
        assert await asyncio.wait_for(received.get(), 10) == "before"

        admin = await asyncpg.connect(POSTGRES)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                name,
            )
        finally:
            await admin.close()
        assert killed >= 2  # the listening connection and a publishing one

        async def publish_until_received() -> str:
            while True:
                with contextlib.suppress(ConnectionError):
                    await broker.publish(channel, "after")
                with contextlib.suppress(asyncio.TimeoutError):
                    return await asyncio.wait_for(received.get(), 0.5)

        assert await asyncio.wait_for(publish_until_received(), 20) == "after"
        assert broker.reconnects == 1
    finally:
        await broker.disconnect()


async def test_next_published_raises_when_the_listening_connection_dies(channel: str) -> None:
    name = f"fs-{uuid.uuid4().hex[:12]}"
    backend = PostgresBackend(f"{POSTGRES}?application_name={name}")
    await backend.connect()
    try:
        await backend.subscribe(channel)
        admin = await asyncpg.connect(POSTGRES)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = $1 AND query LIKE 'LISTEN%'",
                name,
            )
        finally:
            await admin.close()
        with pytest.raises(ConnectionError, match="lost the PostgreSQL listening connection"):
            await asyncio.wait_for(backend.next_published(), 10)
    finally:
        await backend.disconnect()
