"""Exactly-once derived topics on Redis Streams: replay from checkpoints, atomic commits.

On ``redis-stream://`` the sources keep their history, so a derived topic need not lose what
its owner was doing when it died. The owner reads its sources' streams itself (it finds them
with ``SCAN ... TYPE stream`` and reads them with ``XREAD``), and after each batch of entries
commits, in one Lua script fenced by its lease:

- the derived events the batch produced (``XADD`` on the derived topic's streams),
- a checkpoint: the engine's state and the position reached in every source stream.

Either both happen or neither, and only while this process holds the lease. A new owner
restores the checkpoint and reads on from its positions: the entries after the last commit are
processed again, the events they produce are emitted for the first time, and nothing that was
committed is counted twice or emitted twice.

A stream the checkpoint does not know is read from the moment the first owner started (the
``origin``): it has had no entry processed yet, so any entry it holds after that is new.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..brokers.stream_epochs import EPOCHS_KEY

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger("fastapi_streaming.processing")

#: Entries one read returns at most; a batch is committed at once.
BATCH = 500
#: Milliseconds one read blocks while the sources are quiet.
BLOCK_MS = 500
#: Seconds between looks for new source streams.
DISCOVER_EVERY = 1.0
#: The largest sequence number of a stream entry id (``<ms>-<sequence>``, 64 bits each).
MAX_SEQUENCE = 2**64 - 1
#: Approximate length the derived streams are trimmed to, unless the broker URL's ``maxlen``
#: says otherwise (as the backend does; 0 never trims).
MAXLEN = 10_000

# KEYS: the fence, the checkpoint, the stream epochs, then one derived stream per output.
# ARGV: the owner, the checkpoint, maxlen, the fence's group ('' for a lease) and entry id,
# then one message per output. The fence is a lease key holding the owner's token, or, for a
# key partition, the partition's token entry, pending for the owner in the consumer group.
_COMMIT = """
local held
if ARGV[4] == '' then
  held = redis.call('get', KEYS[1]) == ARGV[1]
else
  local entry = redis.call('xpending', KEYS[1], ARGV[4], ARGV[5], ARGV[5], 1)[1]
  held = entry ~= nil and entry[2] == ARGV[1]
end
if not held then return 0 end
redis.call('set', KEYS[2], ARGV[2])
for i = 4, #KEYS do
  local id
  if ARGV[3] == '0' then
    id = redis.call('xadd', KEYS[i], '*', 'message', ARGV[i + 2])
  else
    id = redis.call('xadd', KEYS[i], 'MAXLEN', '~', ARGV[3], '*', 'message', ARGV[i + 2])
  end
  local ms = string.match(id, '^(%d+)')
  redis.call('hsetnx', KEYS[3], 'stream:' .. KEYS[i], ms)
end
return 1
"""


class Fence(Protocol):
    """What a commit checks first: that this process still owns the work (see _COMMIT)."""

    @property
    def name(self) -> str:
        """What the checkpoint is named after: the derived channel, and the partition if any."""
        ...

    def fence(self) -> tuple[str, str, str, str]:
        """(key, owner, group or '', entry id or '') for the commit script."""
        ...


class Feed(Protocol):
    """Where a pipeline reads its sources from a checkpoint and commits what it made:
    :class:`StreamFeed` (Redis Streams), :class:`~.kafka_feed.KafkaFeed`, or a broker plugin's
    (given by its backend, :class:`~.hosting.DerivedTopicBackend`)."""

    async def load(self) -> Checkpoint: ...

    def batches(self) -> AsyncIterator[tuple[list[tuple[str, str]], dict[str, str]]]: ...

    def advance(self, positions: dict[str, str]) -> None: ...

    async def commit(
        self, state: dict[str, Any] | None, outputs: list[tuple[str, str]]
    ) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Checkpoint:
    """What a new owner continues from."""

    origin_ms: int
    positions: dict[str, str] = field(default_factory=dict)
    engine: dict[str, Any] | None = None


class LostLease(RuntimeError):
    """The commit was refused: another process holds the lease now."""


class StreamFeed:
    """Feeds a pipeline from Redis Streams and commits its output with checkpoints."""

    def __init__(
        self,
        url: str,
        lease: Fence,
        patterns: list[str],
        accepts: Callable[[str], bool] = lambda stream: True,
        maxlen: int = MAXLEN,
        directory: StreamDirectory | None = None,
    ) -> None:
        self.maxlen = maxlen
        self.url = url
        self.lease = lease
        self.patterns = patterns
        self.accepts = accepts
        self.key = f"fastapi-streaming:checkpoint:{lease.name}"
        #: Shared by the partitions of one process, so the key space is scanned once for all.
        self.directory = directory
        # Imported here: only derived topics on a Redis broker need the redis extra.
        from redis.asyncio import Redis as RedisClient

        self._client: Redis = RedisClient.from_url(url)
        self.checkpoint = Checkpoint(origin_ms=0)

    async def load(self) -> Checkpoint:
        """The last committed checkpoint, or a new one starting now."""
        raw: Any = await self._client.get(self.key)
        if raw is None:
            # Saved at once: an owner that hands over before its first commit must not move
            # the origin, or the next owner would skip what came in between.
            seconds, micros = await self._client.time()
            first = Checkpoint(origin_ms=int(seconds) * 1000 + int(micros) // 1000)
            await self._client.set(self.key, pickle.dumps(first), nx=True)
            raw = await self._client.get(self.key)
        self.checkpoint = pickle.loads(raw)  # written by this library's owners only
        return self.checkpoint

    async def batches(
        self,
    ) -> AsyncIterator[tuple[list[tuple[str, str]], dict[str, str]]]:
        """Batches of (stream, message) entries after the checkpoint's positions, for ever,
        each with the positions after it.

        The checkpoint's positions move only when the caller, having processed a batch, calls
        :meth:`advance` and :meth:`commit`: a commit in between (of windows closed by the
        clock) must not claim entries that were read but not yet processed.
        """
        loop = asyncio.get_running_loop()
        next_look = 0.0
        while True:
            if loop.time() >= next_look:
                await self._discover()
                next_look = loop.time() + DISCOVER_EVERY
            positions = dict(self.checkpoint.positions)
            if not positions:
                await asyncio.sleep(BLOCK_MS / 1000)
                continue
            streams: dict[Any, Any] = dict(positions)
            reply: Any = await self._client.xread(streams, count=BATCH, block=BLOCK_MS)
            if reply:
                yield in_arrival_order(reply, positions)

    def advance(self, positions: dict[str, str]) -> None:
        """Record that the entries up to ``positions`` are processed (saved by the next commit)."""
        self.checkpoint.positions.update(positions)

    async def commit(self, state: dict[str, Any] | None, outputs: list[tuple[str, str]]) -> None:
        """Publish ``outputs`` (channel, message) and save the checkpoint, atomically."""
        self.checkpoint.engine = state
        blob = pickle.dumps(self.checkpoint)
        fence, owner, group, entry = self.lease.fence()
        keys = [fence, self.key, EPOCHS_KEY, *(channel for channel, _ in outputs)]
        args: list[bytes | str | int] = [owner, blob, self.maxlen, group, entry]
        args += [message for _, message in outputs]
        done = await self._client.eval(_COMMIT, len(keys), *keys, *args)
        if not done:
            raise LostLease(f"the lease {self.lease.name!r} is held by another process")

    async def _discover(self) -> None:
        positions = self.checkpoint.positions
        start = just_before(self.checkpoint.origin_ms)
        for pattern in self.patterns:
            if self.directory is not None:
                found = await self.directory.streams(pattern)
            else:
                found = await scan_streams(self._client, pattern)
            for name in found:
                if name not in positions and self.accepts(name):
                    positions[name] = start

    async def close(self) -> None:
        await self._client.aclose()


def just_before(ms: int) -> str:
    """The position from which ``XREAD`` returns the entries of millisecond ``ms`` on.

    ``XREAD`` returns what comes after a position: from ``{ms}-0`` it would skip the entry a
    publish made in the very millisecond the first owner started, the first entry of that
    millisecond.
    """
    return f"{ms - 1}-{MAX_SEQUENCE}" if ms > 0 else "0-0"


def in_arrival_order(
    reply: Any, positions: dict[str, str]
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The entries of one ``XREAD`` over several streams in the order Redis received them,
    and the positions after them (``positions`` is updated).

    ``XREAD`` answers stream by stream; processed that way, a stream's later entries would
    pass the next stream's earlier ones, and event-time windows would see events late that
    were not (on a replay after a takeover most of all). Entry ids are Redis's arrival times,
    so merging by id restores the order, up to the first stream that was cut off by ``COUNT``
    (its next entries may be older than the other streams' last): the rest waits for the
    next read.
    """
    entries: list[tuple[tuple[int, int], str, str, Any]] = []
    cutoff: tuple[int, int] | None = None
    for stream, stream_entries in reply:
        name = _text(stream)
        for entry_id, fields in stream_entries:
            raw_id = _text(entry_id)
            entries.append((_entry_id(raw_id), name, raw_id, fields.get(b"message")))
        if len(stream_entries) >= BATCH:
            last = _entry_id(_text(stream_entries[-1][0]))
            cutoff = last if cutoff is None else min(cutoff, last)
    entries.sort(key=lambda entry: entry[0])
    batch: list[tuple[str, str]] = []
    for order, name, raw_id, data in entries:
        if cutoff is not None and order > cutoff:
            break
        positions[name] = raw_id
        if data is None:
            continue
        try:
            batch.append((name, data.decode()))
        except UnicodeDecodeError:
            logger.warning("Skipped an entry of %r that is not UTF-8", name)
    return batch, positions


def _entry_id(raw: str) -> tuple[int, int]:
    millis, _, sequence = raw.partition("-")
    return int(millis), int(sequence or 0)


async def scan_streams(client: Redis, pattern: str) -> list[str]:
    """The streams whose names match ``pattern`` (``SCAN ... TYPE stream``)."""
    return [_text(key) async for key in client.scan_iter(match=pattern, _type="stream", count=1000)]


class StreamDirectory:
    """The source streams of one process's partitions, scanned at most once a second.

    Every partition of a derived topic reads its own share of the same source streams; each
    scanning the whole key space every second would multiply that work by the partitions.
    """

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis as RedisClient

        self._client: Redis = RedisClient.from_url(url)
        self._found: dict[str, tuple[float, list[str]]] = {}
        self._lock = asyncio.Lock()

    async def streams(self, pattern: str) -> list[str]:
        async with self._lock:
            now = asyncio.get_running_loop().time()
            cached = self._found.get(pattern)
            if cached is None or now - cached[0] >= DISCOVER_EVERY:
                cached = self._found[pattern] = (now, await scan_streams(self._client, pattern))
            return cached[1]

    async def close(self) -> None:
        await self._client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
