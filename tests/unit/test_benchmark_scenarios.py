"""The benchmark's command-line overrides reach the scenarios that publish, and name them."""

from __future__ import annotations

from benchmarks.scenarios import Scenario
from benchmarks.suite import overridden


def test_publishers_reach_publishing_scenarios_and_show_in_their_name() -> None:
    stream = Scenario("stream", "sse", 1000, 1000, 2.0)
    more = overridden(stream, publishers=16)
    assert more.publishers == 16
    assert more.name == "SSE 1,000 x 1,000/s, 16 publishers"
    assert overridden(Scenario("scaleout", "sse", 1000, 1000, 3.0), publishers=8).publishers == 8
    # the default keeps the names results were saved under
    assert stream.name == "SSE 1,000 x 1,000/s"


def test_runs_that_do_not_publish_keep_their_own_settings() -> None:
    idle = Scenario("idle", "sse", 500)
    assert overridden(idle, duration=9.0, publishers=16) == idle
    websub = Scenario("websub", "websub", 200, 5, 2.0)
    assert overridden(websub, duration=9.0, publishers=16) == websub


def test_duration_still_overrides_stream_and_cost_runs_only() -> None:
    assert overridden(Scenario("cost", "sse", 1000, 100, 3.0), duration=5.0).duration == 5.0
    assert overridden(Scenario("scaleout", "sse", 1000, 1000, 3.0), duration=5.0).duration == 3.0
