"""Key partitions of a derived topic, shared among processes by a Redis Streams consumer group.

When one owner cannot keep up, ``partitions=N`` splits a derived topic by key: an entry of a
source stream belongs to partition ``hash(key) % N``, and each partition has its own state,
checkpoint and source positions. Who computes which partition is decided by Redis's own
consumer-group machinery, not by a coordinator of ours:

- A small control stream holds one *token* entry per partition, read through one consumer
  group. ``XREADGROUP`` hands each token to exactly one process: the token pending for a
  consumer in the group's pending entries list (PEL) *is* that process's ownership of the
  partition. Every commit of the partition (output and checkpoint, :mod:`.stream_feed`)
  first checks, in the same Lua script, that the token is still pending for this process.
- The owner ``XCLAIM``\\s its own tokens every second, which resets their idle time. A process
  that dies stops doing so, and once a token has been idle for the lease time another process
  takes it with ``XAUTOCLAIM``; from then on the old owner's commits are refused.
- A process gives a partition up (to rebalance, or when it stops) by acknowledging its token
  and adding a fresh one for the same partition, which the next ``XREADGROUP`` hands out.

The one thing a Redis consumer group does not give is its live membership (Redis 7.0 updates a
consumer's idle time only when it is handed entries), which each process needs to know its fair
share, ``ceil(N / live processes)``. So every process also stamps a sorted set with the time,
each second. It only decides how many partitions a process *asks* for; ownership, handover and
takeover stay in the consumer group, and an idle token is taken over whatever the count says.
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

GROUP = "owners"
PREFIX = "fastapi-streaming:partitions"

# Creates the control stream with one token per partition, once, whoever comes first.
_CREATE = """
if redis.call('exists', KEYS[1]) == 1 then return 0 end
redis.call('xgroup', 'create', KEYS[1], ARGV[1], '0', 'MKSTREAM')
for p = 0, tonumber(ARGV[2]) - 1 do
  redis.call('xadd', KEYS[1], '*', 'partition', p)
end
return 1
"""

# Resets the idle time of the tokens still pending for ARGV[2]; returns those ids.
_REFRESH = """
local held = {}
for i = 3, #ARGV do
  local entry = redis.call('xpending', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)[1]
  if entry ~= nil and entry[2] == ARGV[2] then
    redis.call('xclaim', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    held[#held + 1] = ARGV[i]
  end
end
return held
"""

# Gives a token up: acknowledged and deleted, and a fresh one for the same partition added.
_RELEASE = """
local entry = redis.call('xpending', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)[1]
if entry == nil or entry[2] ~= ARGV[2] then return 0 end
redis.call('xack', KEYS[1], ARGV[1], ARGV[3])
redis.call('xdel', KEYS[1], ARGV[3])
redis.call('xadd', KEYS[1], '*', 'partition', ARGV[4])
return 1
"""


def partition_of(key: Sequence[Hashable], partitions: int) -> int:
    """The partition of a key: the same in every process (CRC-32 of its text)."""
    return zlib.crc32(repr(tuple(key)).encode()) % partitions


@dataclass(frozen=True)
class PartitionClaim:
    """This process's hold on one partition: its token entry, pending for it in the group.

    It is the :class:`~.stream_feed.Fence` of the partition's commits.
    """

    #: The derived channel and partition, which name the partition's checkpoint.
    name: str
    partition: int
    stream: str
    consumer: str
    entry_id: str

    def fence(self) -> tuple[str, str, str, str]:
        return self.stream, self.consumer, GROUP, self.entry_id


class PartitionGroup:
    """The consumer group through which the processes share one derived topic's partitions."""

    def __init__(
        self, client: Redis, channel: str, partitions: int, consumer: str, ttl_ms: int
    ) -> None:
        self.client = client
        self.channel = channel
        self.partitions = partitions
        self.consumer = consumer
        self.ttl_ms = ttl_ms
        #: A new count of partitions is a new group (and new checkpoints): keys move.
        self.stream = f"{PREFIX}:{channel}:{partitions}"
        self.members = f"{self.stream}:members"
        #: Tokens this process holds, by partition.
        self.held: dict[int, PartitionClaim] = {}

    async def join(self) -> None:
        await self.client.eval(_CREATE, 1, self.stream, GROUP, self.partitions)
        await self.heartbeat()

    async def heartbeat(self) -> int:
        """Stamp this process as live; returns how many processes are (this one included)."""
        seconds, micros = await self.client.time()
        now = int(seconds) * 1000 + int(micros) // 1000
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(self.members, {self.consumer: now})
        pipe.zremrangebyscore(self.members, "-inf", now - self.ttl_ms)
        pipe.zcard(self.members)
        pipe.pexpire(self.members, self.ttl_ms * 10)
        replies = await pipe.execute()
        return max(int(replies[2]), 1)

    def share(self, live: int) -> int:
        """How many partitions one of ``live`` processes should hold."""
        return -(-self.partitions // live)

    async def refresh(self) -> list[PartitionClaim]:
        """Keep the held tokens; returns the claims that were lost (taken over meanwhile)."""
        if not self.held:
            return []
        ids = [claim.entry_id for claim in self.held.values()]
        kept: Any = await self.client.eval(_REFRESH, 1, self.stream, GROUP, self.consumer, *ids)
        still = {_text(entry) for entry in kept}
        lost = [claim for claim in self.held.values() if claim.entry_id not in still]
        for claim in lost:
            del self.held[claim.partition]
        return lost

    async def claim(self, wanted: int) -> list[PartitionClaim]:
        """Take up to ``wanted`` more partitions from the free tokens, and any token idle for
        longer than the lease time (its owner died or stalled), even beyond ``wanted``: an
        abandoned partition is taken at once, and the next rebalance evens the shares out.
        """
        taken: list[PartitionClaim] = []
        if wanted > 0:
            reply: Any = await self.client.xreadgroup(
                GROUP, self.consumer, {self.stream: ">"}, count=wanted
            )
            for _, entries in reply or ():
                taken += self._record(entries)
        abandoned: Any = await self.client.xautoclaim(
            self.stream,
            GROUP,
            self.consumer,
            min_idle_time=self.ttl_ms,
            start_id="0-0",
            count=max(wanted - len(taken), 1),
        )
        taken += self._record(abandoned[1])
        return taken

    async def release(self, partition: int) -> None:
        """Give a partition up, so another process may take it at once."""
        claim = self.held.pop(partition, None)
        if claim is not None:
            await self.client.eval(
                _RELEASE, 1, self.stream, GROUP, self.consumer, claim.entry_id, partition
            )

    async def leave(self) -> None:
        for partition in list(self.held):
            await self.release(partition)
        await self.client.zrem(self.members, self.consumer)

    def _record(self, entries: Any) -> list[PartitionClaim]:
        claims = []
        for entry_id, fields in entries:
            if not fields:
                continue  # deleted meanwhile
            partition = int(_text(fields[b"partition"]))
            claim = PartitionClaim(
                name=f"{self.channel}#partition-{partition}-of-{self.partitions}",
                partition=partition,
                stream=self.stream,
                consumer=self.consumer,
                entry_id=_text(entry_id),
            )
            self.held[partition] = claim
            claims.append(claim)
        return claims


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
