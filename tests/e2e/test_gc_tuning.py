"""The server freezes the app's startup heap out of full collections, unless told not to."""

from __future__ import annotations

import httpx

from tests.support.server import ServerProcess

ENV = {"BROKER_URL": "memory://"}


def collector_of(server: ServerProcess) -> dict[str, object]:
    answer = httpx.get(f"{server.url}/test/gc", timeout=10)
    answer.raise_for_status()
    result: dict[str, object] = answer.json()
    return result


def test_the_startup_heap_is_frozen_by_default() -> None:
    with ServerProcess("tests.apps.core_app:app", env=ENV) as server:
        collector = collector_of(server)

    frozen = collector["frozen"]
    assert isinstance(frozen, int) and frozen > 10_000, collector  # the app and its imports
    assert collector["threshold"] == [700, 10, 10]  # Python's own, unless asked


def test_freezing_can_be_turned_off_and_the_threshold_set() -> None:
    options = {"gc_freeze": False, "gc_threshold": 5000}
    with ServerProcess("tests.apps.core_app:app", env=ENV, options=options) as server:
        collector = collector_of(server)

    assert collector == {"frozen": 0, "threshold": [5000, 10, 10]}
