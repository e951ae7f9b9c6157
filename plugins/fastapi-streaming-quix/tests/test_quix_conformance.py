"""The processing conformance suite on the quix engine, against a private tansu broker.

Every test starts a Quix Streams application (a consumer group join, topic creation) and
restarts it once the test's first source topic exists, so they take seconds, not milliseconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import ClassVar

import pytest
from fastapi_streaming.testing.private_brokers import private_tansu, session_broker
from fastapi_streaming.testing.processes import PrivateBroker
from fastapi_streaming.testing.processing_conformance import ProcessingConformance, per_second

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="session")
def tansu() -> Iterator[PrivateBroker]:
    with session_broker(private_tansu) as broker:
        yield broker


class TestQuixOnTansu(ProcessingConformance):
    engine = "quix"
    patience = 60.0
    unsupported: ClassVar[dict[str, str]] = {
        "test_the_watermark_is_shared_by_keys": (
            "Quix Streams keeps event time per key (its window state's latest timestamp): a "
            "key's windows close only on that key's later events"
        ),
        "test_session_windows_end_after_a_gap": (
            "Quix Streams merges sessions, and fastapi-streaming's aggregates have no merge: "
            "the engine refuses session windows"
        ),
        "test_failover_neither_loses_nor_double_counts": (
            "tansu 0.6.0 does not hand a group's partitions to a member that joined while "
            "another held them all when that one leaves (none within 45 s, whatever the "
            "assignment strategy); a member joining after it left gets them in about 5 s, and "
            "the state then carries over (see the test below)"
        ),
        "test_late_events_update_a_closed_window": (
            "Quix Streams drops events for closed windows: the engine refuses late='update'"
        ),
    }

    @pytest.fixture
    def broker_url(self, tansu: PrivateBroker) -> str:
        return tansu.url


async def test_a_new_owner_restores_the_window_state_from_the_changelog(
    tansu: PrivateBroker,
) -> None:
    """The owner stops mid-window and another process starts after it: Quix restores the open
    window from its changelog topic and reads on from the committed offsets, so the window's
    result counts the events from before and after the handover, each once."""
    suite = TestQuixOnTansu()
    tag = f"c{uuid.uuid4().hex[:10]}"
    address = "/clicks/home/per-second"
    async with suite.running(tansu.url, tag, per_second, address) as (runtime, (before,)):
        await suite.clicks(runtime, ("home", 10.1), ("home", 10.5), ("home", 11.2))
        assert await before.wait_for(1, suite.patience) == [
            {"page": "home", "start": 10.0, "end": 11.0, "count": 2}
        ]
    async with suite.running(tansu.url, tag, per_second, address) as (runtime, (after,)):
        await suite.clicks(runtime, ("home", 11.4), ("home", 11.9), ("home", 12.5))
        await after.wait_until(lambda payload: payload["start"] == 11.0, suite.patience)
        assert [p for p in after.payloads() if p["start"] == 11.0] == [
            {"page": "home", "start": 11.0, "end": 12.0, "count": 3}
        ]
