"""The window engine on its own: windows, keys, watermark, lateness, emit modes, bad reducers."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fastapi_streaming.processing import (
    Count,
    CountWindow,
    First,
    Hopping,
    Last,
    Max,
    Mean,
    Min,
    Reduce,
    Session,
    Sum,
    Tumbling,
)
from fastapi_streaming.processing.engine import Result, WindowEngine


def summary(results: list[Result]) -> list[tuple[Any, ...]]:
    return [(r.key, r.start, r.end, r.value, r.revision, r.final) for r in results]


def test_tumbling_windows_close_when_the_watermark_passes_their_end() -> None:
    engine = WindowEngine(Tumbling(seconds=1), Count())
    assert engine.add(("a",), 10.1, {}) == []
    assert engine.add(("a",), 10.9, {}) == []
    assert engine.add(("b",), 10.5, {}) == []
    out = engine.add(("a",), 11.0, {})  # watermark 11.0 closes [10, 11) of both keys
    assert sorted(summary(out)) == [
        (("a",), 10.0, 11.0, 2, 0, True),
        (("b",), 10.0, 11.0, 1, 0, True),
    ]
    assert engine.open_windows == 1


def test_zero_or_negative_windows_are_refused_with_what_to_write() -> None:
    with pytest.raises(ValueError, match=r"longer than zero.*Tumbling\(seconds=1\)"):
        Tumbling(seconds=0)
    with pytest.raises(ValueError, match="longer than zero"):
        Hopping(seconds=10, every_seconds=0)
    with pytest.raises(ValueError, match="longer than zero"):
        Session(seconds=-1)
    with pytest.raises(ValueError, match="at least one event"):
        CountWindow(0)
    with pytest.raises(ValueError, match=r"step .* longer than the window"):
        Hopping(seconds=1, every_seconds=2)


def test_hopping_windows_hold_every_event_of_their_span() -> None:
    engine = WindowEngine(Hopping(seconds=2, every_seconds=1), Sum("n"), allowed_lateness=5)
    for ts, n in [(0.5, 1), (1.5, 10), (2.5, 100)]:
        engine.add(("k",), ts, {"n": n})
    out = engine.advance(10)
    assert summary(out) == [
        (("k",), -1.0, 1.0, 1, 0, True),
        (("k",), 0.0, 2.0, 11, 0, True),
        (("k",), 1.0, 3.0, 110, 0, True),
        (("k",), 2.0, 4.0, 100, 0, True),
    ]


def test_session_windows_end_after_a_gap_per_key() -> None:
    engine = WindowEngine(Session(seconds=5), Count())
    engine.add(("a",), 100, {})
    engine.add(("a",), 103, {})
    engine.add(("a",), 107, {})  # 4 s after the last: same session
    out = engine.add(("a",), 120, {})  # 13 s: the session ended, a new one starts
    assert summary(out) == [(("a",), 100, 107, 3, 0, True)]
    assert summary(engine.advance(125)) == [(("a",), 120, 120, 1, 0, True)]
    assert engine.open_windows == 0


def test_count_windows_emit_every_n_events_of_a_key() -> None:
    engine = WindowEngine(CountWindow(3), Sum())
    out: list[Result] = []
    for ts, n in enumerate([1, 2, 3, 4, 5, 6, 7]):
        out += engine.add(("k",), float(ts), n)
    assert [(r.value, r.sequence, r.start, r.end) for r in out] == [
        (6, 0, 0.0, 2.0),
        (15, 1, 3.0, 5.0),
    ]
    assert engine.open_windows == 1  # the seventh event waits for two more


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [
        (Count(), 4),
        (Sum("p"), 10),
        (Min("p"), 1),
        (Max("p"), 4),
        (Mean("p"), 2.5),
        (First("p"), 3),
        (Last("p"), 2),
        (Reduce(lambda acc, e: [*acc, e["p"]], factory=list), [3, 1, 4, 2]),
        (Reduce(lambda acc, e: acc * e["p"], initial_value=1), 24),
    ],
)
def test_built_in_aggregates_and_reducers(aggregate: Any, expected: Any) -> None:
    engine = WindowEngine(Tumbling(seconds=10), aggregate)
    for ts, p in [(1, 3), (2, 1), (3, 4), (4, 2)]:
        engine.add(("k",), ts, {"p": p})
    (result,) = engine.advance(10)
    assert result.value == expected


def test_allowed_lateness_keeps_windows_open_for_out_of_order_events() -> None:
    engine = WindowEngine(Tumbling(seconds=1), Count(), allowed_lateness=2)
    engine.add(("k",), 10.5, {})
    assert engine.add(("k",), 12.5, {}) == []  # watermark 10.5: [10, 11) still open
    assert engine.add(("k",), 10.7, {}) == []  # out of order but in time
    out = engine.add(("k",), 13.0, {})  # watermark 11.0
    assert summary(out) == [(("k",), 10.0, 11.0, 2, 0, True)]


def test_late_events_are_dropped_and_counted_by_default() -> None:
    engine = WindowEngine(Tumbling(seconds=1), Count())
    engine.add(("k",), 10.5, {})
    engine.add(("k",), 11.5, {})  # closes [10, 11)
    assert engine.add(("k",), 10.6, {}) == []
    assert engine.stats.late_dropped == 1
    assert engine.add(("k",), 3.0, {}) == []  # a window that never opened
    assert engine.stats.late_dropped == 2


def test_late_events_can_update_the_emitted_window_as_a_new_revision() -> None:
    engine = WindowEngine(Tumbling(seconds=1), Count(), late="update")
    engine.add(("k",), 10.5, {})
    (closed,) = engine.add(("k",), 11.5, {})
    assert (closed.value, closed.revision) == (1, 0)
    (update,) = engine.add(("k",), 10.6, {})
    assert (update.start, update.value, update.revision, update.final) == (10.0, 2, 1, True)
    engine.add(("k",), 13.0, {})  # one window length after its end: forgotten
    assert engine.add(("k",), 10.7, {}) == []
    assert engine.stats.late_dropped == 1


def test_emit_updates_respects_the_minimum_interval() -> None:
    engine = WindowEngine(Tumbling(seconds=10), Count(), emit="updates", min_interval=1.0)
    first = engine.add(("k",), 1, {}, now=100.0)
    assert [(r.value, r.final) for r in first] == [(1, False)]
    assert engine.add(("k",), 2, {}, now=100.5) == []  # too soon: held back
    assert [(r.value, r.revision) for r in engine.flush_updates(101.0)] == [(2, 1)]
    assert engine.flush_updates(103.0) == []  # nothing new
    final = engine.advance(10)
    assert [(r.value, r.revision, r.final) for r in final] == [(2, 2, True)]


def test_a_failing_reducer_is_logged_with_key_and_window_and_the_rest_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def divide(acc: float, event: dict[str, float]) -> float:
        return acc + 1 / event["d"]

    engine = WindowEngine(Tumbling(seconds=1), Reduce(divide, initial_value=0.0))
    with caplog.at_level(logging.ERROR, "fastapi_streaming.processing"):
        engine.add(("k",), 1.1, {"d": 2})
        engine.add(("k",), 1.2, {"d": 0})
        engine.add(("k",), 1.3, {"d": 4})
    (result,) = engine.advance(2)
    assert result.value == 0.75
    assert engine.stats.reducer_errors == 1
    assert "key ('k',) in window [1.0, 2.0)" in caplog.text


def test_memory_grows_with_keys_and_open_windows_never_with_events() -> None:
    engine = WindowEngine(Tumbling(seconds=1), Count())
    for i in range(50_000):
        engine.add((i % 100,), i / 1000, {})  # 50 seconds, 100 keys, 1,000 events/s
    assert engine.open_windows == 100  # only the current second of each key
    assert len(engine._ends) <= 200
