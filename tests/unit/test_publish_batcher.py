"""Publishes of one moment go out together, and none waits forever when the backend closes."""

from __future__ import annotations

import asyncio

import pytest

from fastapi_streaming.brokers.batching import Outgoing, PublishBatcher


async def test_publishes_of_one_moment_are_sent_in_one_batch_in_order() -> None:
    batches: list[list[tuple[str, str]]] = []

    async def send(batch: list[Outgoing]) -> None:
        batches.append([(channel, message) for channel, message, _ in batch])

    batcher = PublishBatcher(send)
    await asyncio.gather(*(batcher.publish("c", f"m{n}") for n in range(5)))
    await batcher.publish("c", "later")

    assert batches == [[("c", f"m{n}") for n in range(5)], [("c", "later")]]


async def test_a_failed_batch_fails_each_of_its_publishers() -> None:
    async def send(batch: list[Outgoing]) -> None:
        raise ConnectionError("broker gone")

    batcher = PublishBatcher(send)
    results = await asyncio.gather(
        *(batcher.publish("c", str(n)) for n in range(3)), return_exceptions=True
    )

    assert [str(result) for result in results] == ["broker gone"] * 3


@pytest.mark.parametrize("started", [False, True], ids=["waiting", "being sent"])
async def test_closing_fails_every_publisher_still_waiting(started: bool) -> None:
    """A broker that never answers: closing the backend must not leave publishers hanging."""
    sending = asyncio.Event()

    async def send(batch: list[Outgoing]) -> None:
        sending.set()
        await asyncio.Event().wait()  # no answer, ever

    batcher = PublishBatcher(send)
    publishers = [asyncio.create_task(batcher.publish("c", str(n))) for n in range(3)]
    await asyncio.sleep(0)  # they are in the outbox now
    if started:
        await asyncio.wait_for(sending.wait(), 5)
    await asyncio.wait_for(batcher.close(), 5)
    results = await asyncio.wait_for(asyncio.gather(*publishers, return_exceptions=True), 5)

    assert all(isinstance(result, ConnectionError) for result in results), results
