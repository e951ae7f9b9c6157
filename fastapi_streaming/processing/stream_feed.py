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
from typing import TYPE_CHECKING, Any

from ..brokers.stream_epochs import EPOCHS_KEY
from .lease import RedisLease

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger("fastapi_streaming.processing")

#: Entries one read returns at most; a batch is committed at once.
BATCH = 500
#: Milliseconds one read blocks while the sources are quiet.
BLOCK_MS = 500
#: Seconds between looks for new source streams.
DISCOVER_EVERY = 1.0
#: Approximate length the derived streams are trimmed to, unless the broker URL's ``maxlen``
#: says otherwise (as the backend does; 0 never trims).
MAXLEN = 10_000

_COMMIT = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('set', KEYS[2], ARGV[2])
for i = 4, #KEYS do
  local id
  if ARGV[3] == '0' then
    id = redis.call('xadd', KEYS[i], '*', 'message', ARGV[i])
  else
    id = redis.call('xadd', KEYS[i], 'MAXLEN', '~', ARGV[3], '*', 'message', ARGV[i])
  end
  local ms = string.match(id, '^(%d+)')
  redis.call('hsetnx', KEYS[3], 'stream:' .. KEYS[i], ms)
end
return 1
"""


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
        lease: RedisLease,
        patterns: list[str],
        accepts: Callable[[str], bool] = lambda stream: True,
        maxlen: int = MAXLEN,
    ) -> None:
        self.maxlen = maxlen
        self.url = url
        self.lease = lease
        self.patterns = patterns
        self.accepts = accepts
        self.key = f"fastapi-streaming:checkpoint:{lease.name}"
        # Imported here: only derived topics on a Redis broker need the redis extra.
        from redis.asyncio import Redis as RedisClient

        self._client: Redis = RedisClient.from_url(url)
        self.checkpoint = Checkpoint(origin_ms=0)

    async def load(self) -> Checkpoint:
        """The last committed checkpoint, or a new one starting now."""
        raw: Any = await self._client.get(self.key)
        if raw is not None:
            self.checkpoint = pickle.loads(raw)  # written by this library's owners only
        else:
            seconds, micros = await self._client.time()
            self.checkpoint = Checkpoint(origin_ms=int(seconds) * 1000 + int(micros) // 1000)
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
            batch: list[tuple[str, str]] = []
            for stream, entries in reply or ():
                name = _text(stream)
                for entry_id, fields in entries:
                    positions[name] = _text(entry_id)
                    data = fields.get(b"message")
                    if data is None:
                        continue
                    try:
                        batch.append((name, data.decode()))
                    except UnicodeDecodeError:
                        logger.warning("Skipped an entry of %r that is not UTF-8", name)
            if reply:
                yield batch, positions

    def advance(self, positions: dict[str, str]) -> None:
        """Record that the entries up to ``positions`` are processed (saved by the next commit)."""
        self.checkpoint.positions.update(positions)

    async def commit(self, state: dict[str, Any] | None, outputs: list[tuple[str, str]]) -> None:
        """Publish ``outputs`` (channel, message) and save the checkpoint, atomically."""
        self.checkpoint.engine = state
        blob = pickle.dumps(self.checkpoint)
        keys = [self.lease.key, self.key, EPOCHS_KEY, *(channel for channel, _ in outputs)]
        args: list[bytes | str | int] = [self.lease.token, blob, self.maxlen]
        args += [message for _, message in outputs]
        done = await self._client.eval(_COMMIT, len(keys), *keys, *args)
        if not done:
            raise LostLease(f"the lease {self.lease.name!r} is held by another process")

    async def _discover(self) -> None:
        positions = self.checkpoint.positions
        start = f"{self.checkpoint.origin_ms}-0"
        for pattern in self.patterns:
            async for key in self._client.scan_iter(match=pattern, _type="stream", count=1000):
                name = _text(key)
                if name not in positions and self.accepts(name):
                    positions[name] = start

    async def close(self) -> None:
        await self._client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
