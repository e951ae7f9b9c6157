"""The PostgreSQL backend passes the conformance suite against the real server."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest

from fastapi_streaming.brokers.postgres import PostgresBackend
from fastapi_streaming.testing import BackendConformance, BrokerControl, Connected, NativePublish
from fastapi_streaming.testing.private_brokers import private_postgres, session_broker
from fastapi_streaming.testing.processes import PrivateBroker

POSTGRES = "postgres://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PrivateBroker]:
    """A cluster of this session's own, for the restart tests: initdb takes a few seconds."""
    with session_broker(private_postgres) as cluster:
        yield cluster


@pytest.mark.postgres
class TestPostgresBackend(BackendConformance):
    url = POSTGRES
    factory = PostgresBackend

    @pytest.fixture
    def broker_control(self, postgres_cluster: PrivateBroker) -> BrokerControl:
        postgres_cluster.start_now()  # a no-op unless an earlier test left it down
        return postgres_cluster

    @pytest.fixture
    def native_publish(self) -> NativePublish:
        async def publish(channel: str, payload: bytes) -> None:
            connection = await asyncpg.connect(POSTGRES)
            try:
                await connection.execute("SELECT pg_notify($1, $2)", channel, payload.decode())
            finally:
                await connection.close()

        return publish

    async def test_a_message_that_is_not_utf8_is_skipped(
        self, connected: Connected, base: str, native_publish: NativePublish | None
    ) -> None:
        """PostgreSQL itself refuses such a payload, so none can reach a listener.

        The suite's version sends the bytes with the native client; here the server is shown to
        reject them (as text in a UTF-8 database), and the channel to keep working.
        """
        channel = f"{base}.binary"
        await self.subscribe(connected.backend, channel)
        connection = await asyncpg.connect(POSTGRES)
        try:
            with pytest.raises(asyncpg.PostgresError, match=r"(?i)invalid byte sequence"):
                await connection.execute(
                    "SELECT pg_notify($1, convert_from($2::bytea, 'UTF8'))",
                    channel,
                    b"\xff\xfe binary",
                )
        finally:
            await connection.close()
        await self.publish(connected.backend, channel, '{"after": true}')
        received = await connected.inbox.next(channel, timeout=self.receive_timeout)
        assert received == '{"after": true}'
