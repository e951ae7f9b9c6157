"""A table topic's snapshots for new clients: the source's rows, shaped like its changes.

Any worker serves a client that asks for a snapshot, not only the one that captures: the rows
are read from the database by the worker the client is connected to, and go through the same
masking, routing and change handler as the live changes, so a row looks the same in the
snapshot (``op: r``) as in the stream. The fence against the live changes is the source's
(:class:`~fastapi_streaming.cdc.capture.SourceSnapshot`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .capture import SourceSnapshot, TableCapture

logger = logging.getLogger("fastapi_streaming.cdc")

#: ``open_snapshot(filters)`` of a source that can take one.
OpenSnapshot = Callable[[dict[str, str]], Awaitable[SourceSnapshot]]


class TableSnapshots:
    """What a table topic's ``snapshots`` is: opens one snapshot per asking client."""

    def __init__(self, capture: TableCapture, open_snapshot: OpenSnapshot) -> None:
        self.capture = capture
        self.open_snapshot = open_snapshot

    async def open(self, params: dict[str, Any]) -> CaptureSnapshot:
        """The rows of the address with ``params``: those whose routing columns match."""
        topic = self.capture.topic
        filters = {name: topic.convertors[name].to_string(value) for name, value in params.items()}
        snapshot = await self.open_snapshot(filters)
        return CaptureSnapshot(self.capture, snapshot, topic.channel_for(params))


class CaptureSnapshot:
    """One client's snapshot: the rows as broker messages of its channel, and the fence."""

    def __init__(self, capture: TableCapture, snapshot: SourceSnapshot, channel: str) -> None:
        self.capture = capture
        self.snapshot = snapshot
        self.channel = channel

    async def batches(self) -> AsyncIterator[list[tuple[str, str]]]:
        async for rows in self.snapshot.rows():
            batch = []
            for row in rows:
                try:
                    routed = await self.capture.prepare(row)
                except Exception:
                    logger.exception("Left out a snapshot row of %s", self.capture.source.name)
                    continue
                if routed is not None and routed[0] == self.channel:
                    batch.append(routed)
            yield batch

    def covers(self, position: str | None) -> bool:
        return self.snapshot.covers(position)

    def passed(self, position: str | None) -> bool:
        return self.snapshot.passed(position)

    async def close(self) -> None:
        await self.snapshot.close()
