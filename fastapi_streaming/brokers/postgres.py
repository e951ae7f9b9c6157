"""PostgreSQL ``LISTEN``/``NOTIFY``, hardened against the gaps of broadcaster 0.3.1's backend.

broadcaster's backend runs ``LISTEN`` and every publish on one connection (so concurrent
publishes fail with "another operation is in progress"), cannot send a payload of 8,000 bytes
or more (PostgreSQL's ``NOTIFY`` limit) and hangs when the server goes away. Here:

- one dedicated connection listens, and publishes go through a small pool, so any number of
  request handlers can publish at once;
- a message too large for ``NOTIFY`` is stored in a table and announced by a short reference
  (``@ref:<id>``) in the same transaction, so the row is visible when the notification
  arrives; the listener reads the row back, and rows older than the retention are deleted;
- channel names are quoted by asyncpg; a name longer than PostgreSQL's 63-byte identifier limit
  is shortened to a readable prefix plus a hash (:func:`channel_identifier`) instead of being
  truncated silently by the server;
- a lost listening connection is raised from ``next_published()`` so the caller reconnects,
  and a periodic probe catches a connection that died without closing.

URL: ``postgres://user:password@host:5432/database`` (or ``postgresql://``). Two options may be
added as query parameters and are not passed to the server: ``pool_size`` (publishing
connections, default 10) and ``retention`` (seconds a large message's row is kept, default 300).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from broadcaster import BroadcastBackend

from ..stopping import cancel_until_done
from .hookspecs import BrokerMessage

logger = logging.getLogger("fastapi_streaming.broker.postgres")

#: The table that carries messages too large for NOTIFY.
TABLE = "fastapi_streaming_messages"
#: PostgreSQL refuses NOTIFY payloads of this many bytes or more.
NOTIFY_LIMIT = 8000
#: PostgreSQL identifiers, channel names included, hold at most this many bytes.
IDENTIFIER_LIMIT = 63
#: Seconds between probes of the listening connection (and clean-ups of old rows).
PROBE_INTERVAL = 10.0
#: Seconds a probe or a connection close may take before the connection counts as lost.
PROBE_TIMEOUT = 10.0

DEFAULT_POOL_SIZE = 10
DEFAULT_RETENTION = 300.0

_REFERENCE = re.compile(r"@ref:(\d+)")
_HASH_CHARS = 32


def channel_identifier(channel: str) -> str:
    """The PostgreSQL channel name used for ``channel``.

    Names of up to 63 bytes are used as they are (asyncpg quotes them, so case, dots and any
    other character survive). Longer names, which the server would truncate silently and so
    merge, become their first bytes, ``~`` and 32 hex digits of their SHA-256: other systems
    that ``NOTIFY`` such a channel must use this same name.
    """
    if not channel or "\x00" in channel:
        raise ValueError(f"{channel!r} cannot be a PostgreSQL channel name")
    encoded = channel.encode()
    if len(encoded) <= IDENTIFIER_LIMIT:
        return channel
    digest = hashlib.sha256(encoded).hexdigest()[:_HASH_CHARS]
    head = encoded[: IDENTIFIER_LIMIT - _HASH_CHARS - 1].decode(errors="ignore")
    return f"{head}~{digest}"


class _Lost:
    """Put on the queue when the listening connection fails, so ``next_published`` raises."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class PostgresBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        self._dsn, options = _split_options(url)
        self._pool_size = int(options.get("pool_size", DEFAULT_POOL_SIZE))
        self._retention = float(options.get("retention", DEFAULT_RETENTION))
        self._listener: asyncpg.Connection | None = None
        self._pool: asyncpg.Pool | None = None
        #: PostgreSQL channel name -> channel as subscribed.
        self._channels: dict[str, str] = {}
        self._listen_lock = asyncio.Lock()  # one statement at a time on the listening connection
        self._queue: asyncio.Queue[tuple[str, str] | _Lost] = asyncio.Queue()
        self._maintenance: asyncio.Task[None] | None = None
        self._closing = False

    async def connect(self) -> None:
        self._closing = False
        self._queue = asyncio.Queue()
        self._channels = {}
        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._pool_size)
        try:
            await self._create_table()
            self._listener = await asyncpg.connect(self._dsn)
        except BaseException:
            await self._close_pool()
            raise
        self._listener.add_termination_listener(self._on_termination)
        self._maintenance = asyncio.create_task(self._maintain(), name="postgres backend probe")

    async def disconnect(self) -> None:
        self._closing = True
        if self._maintenance is not None:
            await cancel_until_done([self._maintenance])
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
            self._maintenance = None
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                await asyncio.wait_for(listener.close(), PROBE_TIMEOUT)
            except Exception:
                listener.terminate()
        await self._close_pool()
        self._channels = {}

    async def subscribe(self, channel: str) -> None:
        name = channel_identifier(channel)
        async with self._listen_lock:
            if name in self._channels:
                return
            await self._listening().add_listener(name, self._on_notification)
            self._channels[name] = channel

    async def unsubscribe(self, channel: str) -> None:
        name = channel_identifier(channel)
        async with self._listen_lock:
            if self._channels.pop(name, None) is None:
                return
            await self._listening().remove_listener(name, self._on_notification)

    async def publish(self, channel: str, message: Any) -> None:
        name = channel_identifier(channel)
        text = str(message)
        pool = self._publishing()
        if len(text.encode()) < NOTIFY_LIMIT and not _REFERENCE.fullmatch(text):
            await pool.execute("SELECT pg_notify($1, $2)", name, text)
            return
        async with pool.acquire() as connection, connection.transaction():
            row_id = await connection.fetchval(
                f"INSERT INTO {TABLE} (channel, message) VALUES ($1, $2) RETURNING id",
                channel,
                text,
            )
            await connection.execute("SELECT pg_notify($1, $2)", name, f"@ref:{row_id}")

    async def ping(self) -> None:
        """Run a trivial query (health checks): the connection is checked, not assumed."""
        if self._pool is None:
            raise ConnectionError("the PostgreSQL backend is not connected")
        await self._pool.fetchval("SELECT 1")

    async def next_published(self) -> BrokerMessage:
        while True:
            item = await self._queue.get()
            if isinstance(item, _Lost):
                raise ConnectionError(f"lost the PostgreSQL listening connection: {item.reason}")
            name, payload = item
            channel = self._channels.get(name)
            if channel is None:  # unsubscribed since the notification arrived
                continue
            message = await self._resolve(channel, payload)
            if message is not None:
                return BrokerMessage(channel=channel, message=message)

    # -- internals ---------------------------------------------------------------------------

    def _listening(self) -> asyncpg.Connection:
        if self._listener is None:
            raise ConnectionError("the PostgreSQL backend is not connected")
        return self._listener

    def _publishing(self) -> asyncpg.Pool:
        if self._pool is None:
            raise ConnectionError("the PostgreSQL backend is not connected")
        return self._pool

    def _on_notification(self, _connection: Any, _pid: int, name: str, payload: str) -> None:
        self._queue.put_nowait((name, payload))

    def _on_termination(self, _connection: Any) -> None:
        if not self._closing:
            self._queue.put_nowait(_Lost("the server closed it"))

    async def _resolve(self, channel: str, payload: str) -> str | None:
        """The message a notification carries: its payload, or the row it refers to."""
        reference = _REFERENCE.fullmatch(payload)
        if reference is None:
            return payload
        row = await self._publishing().fetchrow(
            f"SELECT channel, message FROM {TABLE} WHERE id = $1", int(reference.group(1))
        )
        if row is None:
            logger.warning(
                "Skipped a message on PostgreSQL channel %r: row %s was already cleaned up",
                channel,
                reference.group(1),
            )
            return None
        if row["channel"] != channel:
            logger.warning(
                "Skipped a reference on PostgreSQL channel %r to a row of channel %r",
                channel,
                row["channel"],
            )
            return None
        return str(row["message"])

    async def _create_table(self) -> None:
        """Create the large-message table once, even when several processes start together."""
        async with self._publishing().acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", TABLE)
            await connection.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                " id bigserial PRIMARY KEY,"
                " channel text NOT NULL,"
                " message text NOT NULL,"
                " created_at timestamptz NOT NULL DEFAULT now())"
            )
            await connection.execute(
                f"CREATE INDEX IF NOT EXISTS {TABLE}_created_at ON {TABLE} (created_at)"
            )

    async def _maintain(self) -> None:
        """Probe the listening connection and delete expired rows, every few seconds."""
        while True:
            await self._clean_up()
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                async with self._listen_lock:
                    await asyncio.wait_for(self._listening().execute("SELECT 1"), PROBE_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._queue.put_nowait(_Lost(f"a probe failed: {exc!r}"))
                return

    async def _clean_up(self) -> None:
        try:
            await self._publishing().execute(
                f"DELETE FROM {TABLE} WHERE created_at < now() - make_interval(secs => $1)",
                self._retention,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the probe reports a lost server; this is only tidying
            logger.info("Could not delete old large messages: %r", exc)

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), PROBE_TIMEOUT)
            except Exception:
                pool.terminate()


def _split_options(url: str) -> tuple[str, dict[str, str]]:
    """The DSN for asyncpg, and this backend's own options taken out of the query string."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {key: value for key, value in query if key in ("pool_size", "retention")}
    rest = [(key, value) for key, value in query if key not in own]
    return urlunsplit(parts._replace(query=urlencode(rest))), own
