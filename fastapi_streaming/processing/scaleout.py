"""Running this process's share of a partitioned derived topic, as the consumer group decides.

:class:`PartitionedOwner` keeps one loop per partitioned derived topic (``partitions=N`` on
``redis-stream://``). Every third of the lease time it stamps this process as live, keeps the
partition tokens it holds (:class:`~.partitions.PartitionGroup`), stops the partitions it lost,
gives up those beyond its fair share, and takes free or abandoned ones. Each partition it holds
runs a :class:`~.pipeline.Pipeline` of its own, fed from the partition's checkpoint by a
:class:`~.stream_feed.StreamFeed` whose commits are fenced by the partition's token: state
moves with the partition, through the checkpoint, and nothing is counted or emitted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from .partitions import PartitionClaim, PartitionGroup
from .pipeline import Pipeline
from .stream_feed import StreamFeed

logger = logging.getLogger("fastapi_streaming.processing")

#: Makes the feed of one partition's pipeline, fenced by its claim.
FeedMaker = Callable[[Pipeline, PartitionClaim], StreamFeed]


class PartitionedOwner:
    """This process's partitions of one derived topic: which it holds, and their pipelines."""

    def __init__(
        self,
        address: str,
        group: PartitionGroup,
        new_pipeline: Callable[[], Pipeline],
        new_feed: FeedMaker,
    ) -> None:
        self.address = address
        self.group = group
        self.new_pipeline = new_pipeline
        self.new_feed = new_feed
        #: The running pipeline of every partition this process holds.
        self.running: dict[int, Pipeline] = {}
        #: Set when the API stops: a Redis error from then on is the cancellation.
        self.stopping = False

    async def run(self) -> None:
        """Join the group, then rebalance every third of the lease time, for ever."""
        interval = self.group.ttl_ms / 3000
        joined = False
        while True:
            try:
                if not joined:
                    await self.group.join()
                    joined = True
                await self.rebalance()
            except Exception as exc:
                if self.stopping:
                    raise asyncio.CancelledError from exc
                logger.warning(
                    "Could not share the partitions of derived topic %s: %r", self.address, exc
                )
            await asyncio.sleep(interval)

    async def rebalance(self) -> None:
        group = self.group
        live = await group.heartbeat()
        for claim in await group.refresh():
            logger.warning("Lost partition %s of derived topic %s", claim.partition, self.address)
            await self._stop(claim.partition)
        share = group.share(live)
        extra = len(group.held) - share
        for partition in sorted(group.held, reverse=True)[: max(extra, 0)]:
            await self._stop(partition)
            await group.release(partition)
        for claim in await group.claim(share - len(group.held)):
            if claim.partition not in self.running:  # (its own token, idle after a stall)
                await self._start(claim)

    async def stop(self) -> None:
        """Stop every partition and hand them back, so others take them at once."""
        for partition in list(self.running):
            await self._stop(partition)
        with contextlib.suppress(Exception):
            await self.group.leave()

    async def _start(self, claim: PartitionClaim) -> None:
        logger.info(
            "This process now computes partition %s of derived topic %s",
            claim.partition,
            self.address,
        )
        pipeline = self.new_pipeline()
        try:
            await pipeline.start(self.new_feed(pipeline, claim))
        except Exception:
            await asyncio.shield(pipeline.stop())
            await self.group.release(claim.partition)
            raise
        self.running[claim.partition] = pipeline

    async def _stop(self, partition: int) -> None:
        pipeline = self.running.pop(partition, None)
        if pipeline is not None:
            await asyncio.shield(pipeline.stop())
