"""Derived topics on NATS JetStream: three server processes elect one owner through a KV
bucket; SIGKILL it mid-window, and another replays the stream from the checkpoint."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.support.processing import owner_killed_mid_window

nats = pytest.importorskip("nats")
pytest.importorskip("fastapi_streaming_nats")


@pytest.fixture
async def jetstream_url() -> AsyncIterator[str]:
    """A stream and prefix of this test's own; the stream and its KV buckets are deleted after."""
    import nats.js.errors

    tag = uuid.uuid4().hex[:12]
    stream = f"E2E_{tag}"
    yield f"nats://127.0.0.1:4222?stream={stream}&prefix=e2e_{tag}&max_age=600"
    client = await nats.connect("nats://127.0.0.1:4222")
    js = client.jetstream()
    try:
        for bucket in (f"{stream}_LEASES", f"{stream}_CHECKPOINTS"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_key_value(bucket)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(stream)
    finally:
        await client.close()


async def test_on_jetstream_the_owner_killed_mid_window_loses_nothing(
    jetstream_url: str, channel_prefix: str
) -> None:
    """The window's result counts every click, those the dead owner had read and checkpointed
    included, and is emitted once: the new owner restores the state and reads on after it."""
    env = {"BROKER_URL": jetstream_url, "CHANNEL_PREFIX": channel_prefix}
    results, owner_pid, window = await owner_killed_mid_window(env)
    starts = [d["start"] for d in results]
    assert len(starts) == len(set(starts))  # no window emitted twice (nor replayed from scratch)
    second = [d for d in results if d["start"] == window]
    assert second == [{"page": "home", "start": window, "count": 4, "by": second[0]["by"]}]
    assert second[0]["by"] != owner_pid  # computed by the new owner, from the checkpoint
