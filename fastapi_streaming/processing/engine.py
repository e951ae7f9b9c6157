"""The in-process window engine: keyed windows, a watermark, and what to emit when.

It is plain synchronous code with no I/O, so it can be tested, measured and checkpointed on its
own; :mod:`.pipeline` feeds it events and publishes what it returns.

State is one :class:`Slot` per key and open window (the accumulator, never the events), plus a
heap of window ends to close them in order. The watermark is the largest event time seen minus
``allowed_lateness``: a window closes (and emits its final result) once the watermark passes its
end. An event for a window that already closed is late: it is dropped and counted, or, with
``late="update"``, it updates the window, which is emitted again with the next revision (the
closed window is kept for one more window length for that; session and count windows are
forgotten when they close).
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

from .aggregates import Aggregate
from .windows import CountWindow, Hopping, Session, Tumbling, WindowSpec

logger = logging.getLogger("fastapi_streaming.processing")

Key = tuple[Hashable, ...]
LatePolicy = Literal["drop", "update"]
EmitPolicy = Literal["final", "updates"]


@dataclass(frozen=True, slots=True)
class Result:
    """One output of a window: its key, bounds, aggregate, and whether it is the final one."""

    key: Key
    start: float
    end: float
    value: Any
    #: 0 for the first emission of a window, then 1, 2... for updates of the same window.
    revision: int
    final: bool
    #: How many events the window holds.
    events: int
    #: The sequence number of a count window (its bounds are its first and last event times).
    sequence: int | None = None


@dataclass(slots=True)
class Slot:
    accumulator: Any
    start: float
    end: float
    events: int = 0
    revision: int = 0
    closed: bool = False
    dirty: bool = False
    last_emit: float = float("-inf")
    sequence: int | None = None
    #: Where the slot is filed under its key: the window start (a session's first event time).
    ident: float = 0.0


@dataclass
class Stats:
    """What the engine skipped, visible in health answers and tests."""

    events: int = 0
    late_dropped: int = 0
    late_updated: int = 0
    reducer_errors: int = 0
    emitted: int = 0


@dataclass
class WindowEngine:
    """Keyed windows over one derived topic's input."""

    window: WindowSpec
    aggregate: Aggregate[Any, Any]
    allowed_lateness: float = 0.0
    late: LatePolicy = "drop"
    emit: EmitPolicy = "final"
    min_interval: float = 0.0
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        if self.allowed_lateness < 0:
            raise ValueError("allowed_lateness cannot be negative; give 0 or more seconds.")
        if self.late not in ("drop", "update"):
            raise ValueError(f"late must be 'drop' or 'update', not {self.late!r}.")
        if self.emit not in ("final", "updates"):
            raise ValueError(f"emit must be 'final' or 'updates', not {self.emit!r}.")
        self._slots: dict[Key, dict[float, Slot]] = {}
        self._ends: list[tuple[float, int, Key, float]] = []  # (close at, tie, key, start)
        self._tie = 0
        self._sequences: dict[Key, int] = {}  # the next count window of each key
        self.max_time = float("-inf")
        self.closed_until = float("-inf")  # windows ending at or before this have closed

    # -- state size --------------------------------------------------------------------------

    @property
    def open_windows(self) -> int:
        return sum(len(slots) for slots in self._slots.values())

    @property
    def watermark(self) -> float:
        return self.max_time - self.allowed_lateness

    # -- checkpoints -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The engine's state (open windows, watermark), for a checkpoint; not a copy."""
        return {
            "slots": self._slots,
            "ends": self._ends,
            "tie": self._tie,
            "sequences": self._sequences,
            "max_time": self.max_time,
            "closed_until": self.closed_until,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot` (a new owner taking over)."""
        self._slots = state["slots"]
        self._ends = state["ends"]
        self._tie = state["tie"]
        self._sequences = state["sequences"]
        self.max_time = state["max_time"]
        self.closed_until = state["closed_until"]

    # -- input -------------------------------------------------------------------------------

    def add(self, key: Key, time: float, event: Any, *, now: float = 0.0) -> list[Result]:
        """Fold one event in; returns what must be emitted now (closed or updated windows)."""
        self.stats.events += 1
        if isinstance(self.window, CountWindow):
            return self._add_count(key, time, event)
        out: list[Result] = []
        if time > self.max_time:
            self.max_time = time
        if isinstance(self.window, Session):
            slot = self._session_slot(key, time, out)
        else:
            slot = None
        bounds = [(slot.start, slot.end)] if slot is not None else self._time_windows(time)
        for start, end in bounds:
            target = slot or self._window_slot(key, start, end)
            if target is None:
                self.stats.late_dropped += 1
                continue
            if not self._fold(key, target, event):
                continue
            if target.closed:
                self.stats.late_updated += 1
                out.append(self._result(key, target, final=True))
            elif self.emit == "updates":
                target.dirty = True
                if now - target.last_emit >= self.min_interval:
                    out.append(self._result(key, target, final=False, now=now))
        out.extend(self.advance(self.watermark))
        return out

    def _time_windows(self, time: float) -> list[tuple[float, float]]:
        assert isinstance(self.window, (Tumbling, Hopping))
        return self.window.windows(time)

    def _window_slot(self, key: Key, start: float, end: float) -> Slot | None:
        slots = self._slots.setdefault(key, {})
        slot = slots.get(start)
        if slot is not None:
            if slot.closed and self.late == "drop":
                return None
            return slot
        if end <= self.closed_until or end <= self.watermark:
            return None  # its window closed and was forgotten (or never opened): too late
        slot = slots[start] = Slot(self.aggregate.initial(), start, end, ident=start)
        self._push(end, key, start)
        return slot

    def _session_slot(self, key: Key, time: float, out: list[Result]) -> Slot | None:
        assert isinstance(self.window, Session)
        gap = self.window.gap
        slots = self._slots.setdefault(key, {})
        current = next((s for s in slots.values() if not s.closed), None)
        if current is not None and current.start - gap <= time <= current.end + gap:
            if time > current.end:
                current.end = time
                self._push(current.end + gap, key, current.ident)
            current.start = min(current.start, time)
            return current
        if current is not None and time > current.end + gap:
            out.extend(self._close(key, current))
        elif current is not None or time + gap <= self.watermark:
            return None  # before the open session, or its gap has passed: late
        slot = Slot(self.aggregate.initial(), time, time, ident=time)
        self._slots.setdefault(key, {})[time] = slot  # closing may have dropped the old dict
        self._push(time + gap, key, time)
        return slot

    def _add_count(self, key: Key, time: float, event: Any) -> list[Result]:
        assert isinstance(self.window, CountWindow)
        slots = self._slots.setdefault(key, {})
        slot = slots.get(0.0)
        if slot is None:
            sequence = self._sequences.get(key, 0)
            slot = slots[0.0] = Slot(self.aggregate.initial(), time, time, sequence=sequence)
        slot.start, slot.end = min(slot.start, time), max(slot.end, time)
        if not self._fold(key, slot, event):
            return []
        if slot.events < self.window.size:
            return []
        del slots[0.0]
        if not slots:
            del self._slots[key]
        self._sequences[key] = (slot.sequence or 0) + 1
        return [self._result(key, slot, final=True)]

    def _fold(self, key: Key, slot: Slot, event: Any) -> bool:
        try:
            slot.accumulator = self.aggregate.add(slot.accumulator, event)
        except Exception:
            self.stats.reducer_errors += 1
            logger.exception(
                "The reducer failed on an event of key %r in window [%s, %s); the event is "
                "skipped and the window goes on",
                key,
                slot.start,
                slot.end,
            )
            return False
        slot.events += 1
        return True

    # -- time --------------------------------------------------------------------------------

    def advance(self, watermark: float) -> list[Result]:
        """Close every window that ends at or before ``watermark``; forget old closed ones."""
        out: list[Result] = []
        retention = self._retention()
        while self._ends and self._ends[0][0] <= watermark:
            close_at, _, key, ident = heapq.heappop(self._ends)
            slots = self._slots.get(key)
            slot = slots.get(ident) if slots else None
            if slot is None or self._close_time(slot) != close_at:
                continue  # stale entry: the window moved (a session grew) or is gone
            if not slot.closed:
                out.extend(self._close(key, slot))
                if retention > 0:
                    self._push(close_at + retention, key, ident)
                    continue
            self._forget(key, ident)
        if watermark > self.closed_until and not isinstance(self.window, Session):
            self.closed_until = max(self.closed_until, watermark - retention)
        return out

    def flush_updates(self, now: float) -> list[Result]:
        """Emit the updated windows whose minimum interval has passed (``emit="updates"``)."""
        out = []
        for key, slots in self._slots.items():
            for slot in slots.values():
                if slot.dirty and not slot.closed and now - slot.last_emit >= self.min_interval:
                    out.append(self._result(key, slot, final=False, now=now))
        return out

    def _retention(self) -> float:
        if self.late != "update":
            return 0.0
        if isinstance(self.window, (Tumbling, Hopping)):
            return self.window.size
        return 0.0  # a closed session or count window is forgotten at once

    def _close_time(self, slot: Slot) -> float:
        if slot.closed:
            return self._close_time_open(slot) + self._retention()
        return self._close_time_open(slot)

    def _close_time_open(self, slot: Slot) -> float:
        if isinstance(self.window, Session):
            return slot.end + self.window.gap
        return slot.end

    def _close(self, key: Key, slot: Slot) -> list[Result]:
        slot.closed = True
        if self._retention() == 0:
            self._forget(key, slot.ident)
        return [self._result(key, slot, final=True)]

    def _forget(self, key: Key, start: float) -> None:
        slots = self._slots.get(key)
        if slots is not None:
            slots.pop(start, None)
            if not slots:
                del self._slots[key]

    def _push(self, close_at: float, key: Key, ident: float) -> None:
        self._tie += 1
        heapq.heappush(self._ends, (close_at, self._tie, key, ident))

    def _result(self, key: Key, slot: Slot, *, final: bool, now: float = 0.0) -> Result:
        try:
            value = self.aggregate.result(slot.accumulator)
        except Exception:
            self.stats.reducer_errors += 1
            logger.exception(
                "The aggregate's result failed for key %r in window [%s, %s)",
                key,
                slot.start,
                slot.end,
            )
            value = None
        result = Result(
            key=key,
            start=slot.start,
            end=slot.end,
            value=value,
            revision=slot.revision,
            final=final,
            events=slot.events,
            sequence=slot.sequence,
        )
        slot.revision += 1
        slot.dirty = False
        slot.last_emit = now
        self.stats.emitted += 1
        return result
