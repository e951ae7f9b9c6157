"""Epochs of a Redis dataset and of its streams: what lets history vouch for its completeness.

Stream entry ids say what a stream holds, not what it once held. After Redis restarts without
persistence, or after a stream is deleted and written again, a stream can look complete (every
entry ever added is still there) while the events published before the loss are gone. Ids alone
cannot tell; these markers can:

- the **dataset epoch**: the Redis time (ms) at which this library first found the dataset
  without its marker, i.e. when the data it can see began. A restart (or ``FLUSHALL``) that
  lost the data loses the marker too, and the next connection or resume writes a new one;
  history that reaches back before the epoch cannot vouch for anything before it;
- a **stream epoch** per stream: the time of the first entry this library added to a stream it
  had not marked yet. A stream whose oldest entry is younger than its marker was recreated after
  it: what was published before that entry is gone.

Both live in one hash, ``fastapi-streaming:epochs``, written with ``HSETNX`` so that every
process agrees on the first value. Other systems writing into a stream need not know about it:
a stream without a marker is judged by its entries alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import asyncio as aioredis

EPOCHS_KEY = "fastapi-streaming:epochs"
DATASET_FIELD = "dataset"


def _stream_field(channel: str) -> str:
    return "stream:" + channel


async def open_dataset(client: aioredis.Redis) -> int:
    """The dataset epoch, written now (with Redis's clock) if the dataset has none."""
    seconds, micros = await client.time()
    now = int(seconds) * 1000 + int(micros) // 1000
    await client.hsetnx(EPOCHS_KEY, DATASET_FIELD, now)
    epoch = await dataset_epoch(client)
    return now if epoch is None else epoch


async def dataset_epoch(client: aioredis.Redis) -> int | None:
    """When the data this Redis holds began, in Unix ms; None if the marker is gone (the data
    was lost since this process connected)."""
    value = await client.hget(EPOCHS_KEY, DATASET_FIELD)
    return None if value is None else int(value)


async def mark_stream(client: aioredis.Redis, channel: str, first_entry_ms: int) -> None:
    """Record when a stream began, if no process recorded it yet."""
    await client.hsetnx(EPOCHS_KEY, _stream_field(channel), first_entry_ms)


async def stream_epoch(client: aioredis.Redis, channel: str) -> int | None:
    value = await client.hget(EPOCHS_KEY, _stream_field(channel))
    return None if value is None else int(value)
