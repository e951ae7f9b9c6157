"""Redis Streams, hardened against the gaps of broadcaster 0.3.1's backend, with history.

A stream keeps what was published on it, so a process that was cut off can continue where it
stopped, and a client can resume on any process. broadcaster's ``redis-stream://`` backend uses
none of that: it re-raises on ``disconnect()`` and leaks its connection, one entry that is not
UTF-8 stops it for every subscriber, it stops for good when its last subscriber leaves, it
reads one entry per round trip, never trims the stream and never notices a lost connection.
Here:

- one reader task does a blocking ``XREAD`` over every subscribed stream, ``COUNT`` entries at
  a time, from the position of each stream;
- ``subscribe`` records the stream's last id at that moment as its position (``$`` would be
  resolved only when the next ``XREAD`` reaches Redis, losing what was added in between);
- entries that are not UTF-8, or have no ``message`` field, are logged and skipped;
- a lost connection is raised from ``next_published()``, and the positions are kept across the
  caller's reconnection, so entries written during an outage are delivered afterwards;
  :meth:`RedisStreamBackend.continued` says whether that resubscription could vouch for them
  (no trimming past the position, and the same Redis dataset: a restart without persistence
  starts a new one), so the clients are told with a ``gap`` otherwise;
- ``publish`` trims with ``XADD MAXLEN ~`` (option ``maxlen``, default 10,000 entries);
- :meth:`RedisStreamBackend.history` reads a stream back from a point in time, for resumes, and
  says it is incomplete when the stream was trimmed past that point, or recreated, or when the
  Redis data began after it (a restart without persistence): see
  :mod:`~fastapi_streaming.brokers.stream_epochs`.

How a new subscription reaches the blocked reader: the ``XREAD`` runs on a connection of its
own, and a subscription change ends it early with ``CLIENT UNBLOCK`` (as if its block timeout
had passed), then the next read names every stream. Cancelling the read instead is not reliable:
a read cancelled while its connection was still being set up (just after a reconnection) went
on blocking, and a channel subscribed meanwhile got nothing until the block timeout, 5 s. A short
block timeout would delay every new subscription's first event by up to that timeout and wake
every idle process many times a second. Where ``CLIENT UNBLOCK`` is not allowed (an ACL), the
read is cancelled and its connection replaced. Unsubscribing needs no wake-up: the reader drops
entries of streams no longer subscribed.

URL: ``redis-stream://host:6379/0`` (``rediss-stream://`` for TLS), with the options ``maxlen``
(approximate length to trim each stream to; 0 never trims) and ``history`` (the most entries
one resume reads back, default 1,000). Other query parameters go to redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from broadcaster import BroadcastBackend
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from ..stopping import cancel_until_done
from . import stream_epochs
from .hookspecs import BrokerMessage
from .redis_direct import DirectConnection

logger = logging.getLogger("fastapi_streaming.broker.redis_stream")

DEFAULT_MAXLEN = 10_000
DEFAULT_HISTORY = 1_000
#: Entries one ``XREAD`` returns at most.
READ_COUNT = 100
#: Milliseconds one ``XREAD`` blocks; the reader's socket times out a little later, so a
#: connection that silently died is noticed instead of waited on forever.
BLOCK_MS = 5_000
READ_SOCKET_TIMEOUT = BLOCK_MS / 1000 + 5
COMMAND_TIMEOUT = 10.0
#: How far before a resume point history is read, for clock skew between the publishing
#: process (which dates the event id) and Redis (which dates the stream entry id).
CLOCK_SKEW_MS = 1_000
#: Events waiting for ``next_published()`` when nobody set ``push``; a full queue makes the
#: reader wait (Redis holds the rest), so a slow consumer costs no memory here. With ``push``
#: (the broker connection sets it) entries go to the topics' bounded inbound queues at once.
QUEUE_SIZE = READ_COUNT * 10
#: Seconds between ``CLIENT UNBLOCK`` attempts while the read it should end has not reached
#: Redis yet.
UNBLOCK_RETRY = 0.005
FIELD = b"message"
#: The most entries one stream's backlog counts (each is read to be counted).
BACKLOG_LIMIT = 1_000

#: A stream entry id, ``<milliseconds>-<sequence>``, as a comparable pair.
EntryId = tuple[int, int]


class _Lost:
    """Put on the queue when the connection fails, so ``next_published`` raises."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class RedisStreamBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        self._redis_url, self.maxlen, self.history_limit = _parse_url(url)
        self._client: aioredis.Redis | None = None
        self._reader: aioredis.Redis | None = None
        #: The reader connection's ``CLIENT ID``, to end its blocking read early.
        self._reader_id: int | None = None
        #: Streams this process has published to since it connected (and so marked).
        self._marked: set[str] = set()
        #: Subscribed streams and the id of the last entry handed over (or the start point).
        self._positions: dict[str, EntryId] = {}
        #: Positions kept from before a disconnect, to continue from on resubscribe.
        self._resume: dict[str, EntryId] = {}
        #: Streams whose last subscription continued from a kept position with nothing lost.
        self._continued: set[str] = set()
        #: The dataset epoch seen at the last connection, and whether it is the one before.
        self._dataset: int | None = None
        self._same_dataset = True
        self._changed = asyncio.Event()
        self._queue: asyncio.Queue[BrokerMessage | _Lost] = asyncio.Queue(QUEUE_SIZE)
        #: Set by the broker connection (``PushDelivery``): called with every entry read.
        self.push: Callable[[BrokerMessage], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._publisher = DirectConnection(self._redis_url, self._lose, timeout=COMMAND_TIMEOUT)
        self._losses: set[asyncio.Task[None]] = set()

    async def connect(self) -> None:
        no_retry = Retry(NoBackoff(), 0)  # the caller reconnects; a retried XADD could duplicate
        self._client = aioredis.Redis.from_url(
            self._redis_url,
            retry=no_retry,
            socket_connect_timeout=COMMAND_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT,
        )
        self._reader = self._new_reader()
        try:
            await self._client.ping()  # fail now, not on the first event, if Redis is not there
            dataset = await stream_epochs.open_dataset(self._client)
            self._reader_id = await self._reader.client_id()  # connects the reader now, too
        except BaseException:
            await self._close_clients()
            raise
        self._same_dataset = self._dataset in (None, dataset)
        self._dataset = dataset
        self._queue = asyncio.Queue(QUEUE_SIZE)
        self._changed = asyncio.Event()
        self._marked = set()
        self._task = asyncio.create_task(self._read(), name="redis stream reader")
        await self._publisher.connect()

    async def disconnect(self) -> None:
        await self._publisher.close()
        if self._task is not None:
            await cancel_until_done([self._task])
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._resume.update(self._positions)
        self._positions = {}
        await self._close_clients()

    async def subscribe(self, channel: str) -> None:
        if channel in self._positions:
            return
        self._continued.discard(channel)
        start = self._resume.get(channel)
        if start is None:
            start = await self._last_id(channel)
        elif not self._same_dataset:
            logger.warning(
                "Redis lost its data since this process read stream %r (a restart without "
                "persistence?): entries added before it returned may be missing",
                channel,
            )
        elif not await self._holds_since(channel, start):
            logger.warning(
                "Redis stream %r no longer holds every entry after %s, where this process "
                "stopped reading it: some entries were trimmed before it could deliver them",
                channel,
                _format(start),
            )
        else:
            self._continued.add(channel)
        self._resume.pop(channel, None)
        self._positions.setdefault(channel, start)
        self._changed.set()

    def continued(self, channel: str) -> bool:
        """Whether the last subscription of ``channel`` went on from where this process stopped
        reading it, in the same dataset, with nothing trimmed in between."""
        return channel in self._continued

    async def unsubscribe(self, channel: str) -> None:
        self._positions.pop(channel, None)
        self._resume.pop(channel, None)
        self._continued.discard(channel)

    async def publish(self, channel: str, message: Any) -> None:
        """Append; returns once Redis has stored the entry."""
        client = self._connected()
        trim = ("MAXLEN", "~", self.maxlen) if self.maxlen else ()
        entry_id = await self._publisher.execute("XADD", channel, *trim, "*", FIELD, message)
        if channel not in self._marked:  # once per stream and connection: one more round trip
            await stream_epochs.mark_stream(client, channel, _parse_id(entry_id)[0])
            self._marked.add(channel)

    def _lose(self, error: BaseException) -> None:
        """The publishing connection failed: reconnect the backend as a whole."""
        task = asyncio.ensure_future(self._queue.put(_Lost(error)))
        self._losses.add(task)
        task.add_done_callback(self._losses.discard)

    async def next_published(self) -> BrokerMessage:
        item = await self._queue.get()
        if isinstance(item, _Lost):
            raise ConnectionError(f"lost the Redis connection: {item.error!r}")
        return item

    async def history(self, channel: str, since_ms: int) -> tuple[list[BrokerMessage], bool]:
        """Entries of ``channel`` from ``since_ms`` (less the clock-skew margin), oldest first.

        The flag is True when the stream provably still holds everything since then: the read
        was not cut short by the ``history`` limit, trimming has removed nothing at or after
        its start, the stream was not recreated since, and the Redis data is older than that.
        """
        start: EntryId = (max(since_ms - CLOCK_SKEW_MS, 0), 0)
        newest_first = await self._connected().xrevrange(
            channel, "+", _format(start), count=self.history_limit
        )
        entries: list[Any] = list(reversed(newest_first or []))
        events = [
            event
            for raw_id, fields in entries
            if (event := _event(channel, raw_id, fields)) is not None
        ]
        if len(entries) >= self.history_limit:
            return events, False
        # Compared with the point itself, not with the skew margin before it: a dataset begun
        # just before that point holds all of it, and one begun after it lost what came between.
        client = self._connected()
        epoch = await stream_epochs.dataset_epoch(client)
        if epoch is None:
            # Lost (FLUSHALL, a restart not noticed yet) at a moment nobody recorded, so nothing
            # since any point can be vouched for; the data this Redis holds begins now.
            await stream_epochs.open_dataset(client)
            return events, False
        if epoch > since_ms:
            return events, False
        return events, await self._holds_since(channel, start)

    async def ping(self) -> None:
        """Ask Redis for an answer (health checks), whether or not any stream is read."""
        await self._connected().ping()

    async def backlog(self) -> dict[str, int]:
        """Entries of each subscribed stream after this process's position (at most
        ``BACKLOG_LIMIT`` counted): one pipelined ``XRANGE`` for all of them."""
        positions = dict(self._positions)
        if not positions:
            return {}
        pipe = self._connected().pipeline(transaction=False)
        for channel, position in positions.items():
            pipe.xrange(channel, "(" + _format(position), "+", count=BACKLOG_LIMIT)
        found = await pipe.execute()
        return {
            channel: len(entries or ()) for channel, entries in zip(positions, found, strict=True)
        }

    # -- internals ---------------------------------------------------------------------------

    def _new_reader(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self._redis_url,
            retry=Retry(NoBackoff(), 0),
            single_connection_client=True,
            socket_connect_timeout=COMMAND_TIMEOUT,
            socket_timeout=READ_SOCKET_TIMEOUT,
        )

    def _connected(self) -> aioredis.Redis:
        if self._client is None:
            raise ConnectionError("the Redis stream backend is not connected")
        return self._client

    async def _last_id(self, channel: str) -> EntryId:
        newest: list[Any] = list(
            await self._connected().xrevrange(channel, "+", "-", count=1) or []
        )
        return _parse_id(newest[0][0]) if newest else (0, 0)

    async def _holds_since(self, channel: str, start: EntryId) -> bool:
        """Whether nothing at or after ``start`` was removed from ``channel``.

        Trimming removes the oldest entries, so a stream whose first entry is at or before
        ``start`` lost nothing after it, and one that still holds every entry ever added lost
        nothing at all. ``XDEL`` punches holes anywhere; Redis 7 records the newest one.
        (Redis 7.0 does not record trimmed ids as deleted, so that field alone is not enough.)
        """
        try:
            info = await self._connected().xinfo_stream(channel)
        except ResponseError:  # no such stream: whatever it held after ``start`` is gone
            return start == (0, 0)
        deleted = info.get("max-deleted-entry-id")
        if deleted is not None and _parse_id(deleted) >= start:
            return False
        first = info.get("first-entry")
        if first is not None and _parse_id(first[0]) <= start:
            return True
        added = info.get("entries-added")
        if added is None or int(added) != int(info["length"]):
            return False
        # It holds every entry it ever had, but did it exist before? Not if it was recreated
        # after the stream epoch recorded when this library first wrote to it.
        born = await stream_epochs.stream_epoch(self._connected(), channel)
        return born is None or first is None or born >= _parse_id(first[0])[0]

    async def _read(self) -> None:
        assert self._reader is not None
        while True:
            while not self._positions:  # XREAD needs a stream: wait for a subscription
                self._changed.clear()
                await self._changed.wait()
            self._changed.clear()
            streams = {name: _format(position) for name, position in self._positions.items()}
            read = asyncio.ensure_future(
                self._reader.xread(streams, count=READ_COUNT, block=BLOCK_MS)  # type: ignore[arg-type]
            )
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({read, changed}, return_when=asyncio.FIRST_COMPLETED)
                if not read.done():  # a new subscription: end this read, the next names it
                    await self._unblock(read)
            finally:
                changed.cancel()
                if not read.done():
                    read.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await read
            if read.cancelled():
                continue
            error = read.exception()
            if error is not None:
                await self._queue.put(_Lost(error))
                return
            await self._deliver(read.result())

    async def _unblock(self, read: asyncio.Future[Any]) -> None:
        """End the reader's blocking ``XREAD`` now; it returns as if its block timed out."""
        while not read.done():
            try:
                if self._reader_id is None:
                    raise ResponseError("the reader's client id is unknown")
                if await self._connected().client_unblock(self._reader_id):
                    break
            except ResponseError as exc:  # e.g. NOPERM: cancel, and start on a fresh connection
                logger.debug("CLIENT UNBLOCK refused (%s); replacing the reader connection", exc)
                read.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await read
                if self._reader is not None:
                    with contextlib.suppress(Exception):
                        await self._reader.aclose()
                self._reader = self._new_reader()
                self._reader_id = None
                return
            except Exception:  # Redis is failing: the read ends soon, with the error to report
                break
            # Not blocked: the read has not reached Redis yet, or is returning entries already.
            await asyncio.wait({read}, timeout=UNBLOCK_RETRY)
        await asyncio.wait({read})

    async def _deliver(self, reply: Any) -> None:
        items = reply.items() if isinstance(reply, dict) else reply or ()
        for raw_name, entries in items:
            name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
            for raw_id, fields in entries:
                position = self._positions.get(name)
                if position is None:
                    break  # unsubscribed meanwhile
                entry_id = _parse_id(raw_id)
                if entry_id <= position:
                    continue  # read before a resubscription moved the position on
                event = _event(name, raw_id, fields)
                if event is not None:
                    if self.push is not None:
                        self.push(event)  # one XREAD's entries reach the topics together
                    else:
                        await self._queue.put(event)
                current = self._positions.get(name)
                if current is not None and current < entry_id:
                    self._positions[name] = entry_id

    async def _close_clients(self) -> None:
        for client in (self._reader, self._client):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        self._reader = self._client = None


def _event(channel: str, raw_id: bytes | str, fields: dict[Any, Any]) -> BrokerMessage | None:
    data = fields.get(FIELD)
    if data is None:
        logger.warning("Skipped entry %s of Redis stream %r: no %r field", raw_id, channel, FIELD)
        return None
    try:
        text = data.decode() if isinstance(data, bytes) else str(data)
    except UnicodeDecodeError:
        logger.warning("Skipped entry %s of Redis stream %r that is not UTF-8", raw_id, channel)
        return None
    return BrokerMessage(channel=channel, message=text)


def _parse_id(raw: bytes | str) -> EntryId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    millis, _, sequence = text.partition("-")
    return int(millis), int(sequence or 0)


def _format(entry_id: EntryId) -> str:
    return f"{entry_id[0]}-{entry_id[1]}"


def _parse_url(url: str) -> tuple[str, int, int]:
    """The URL for redis-py, and this backend's ``maxlen`` and ``history`` options."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower().removesuffix("-stream")
    if scheme not in ("redis", "rediss"):
        raise ValueError(f"not a Redis Streams URL (scheme {parts.scheme!r})")
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {key: value for key, value in query if key in ("maxlen", "history")}
    rest = [(key, value) for key, value in query if key not in own]
    maxlen = _count(own, "maxlen", DEFAULT_MAXLEN, minimum=0)
    history = _count(own, "history", DEFAULT_HISTORY, minimum=1)
    return urlunsplit(parts._replace(scheme=scheme, query=urlencode(rest))), maxlen, history


def _count(options: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    if name not in options:
        return default
    try:
        value = int(options[name])
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ValueError(
            f"the {name!r} option of a Redis Streams URL must be an integer >= {minimum}"
        )
    return value
