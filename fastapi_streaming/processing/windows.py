"""Windows: which slice of a keyed stream an event belongs to.

Time windows (:class:`Tumbling`, :class:`Hopping`) place an event by its time alone, so the
engine can tell which windows exist without keeping any event. :class:`Session` windows grow
with a key's activity and end after a gap; a :class:`CountWindow` holds a fixed number of
events.
A window of zero (or negative) length is refused when it is made, with what to write instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def _seconds(
    what: str, *, seconds: float, minutes: float, hours: float, days: float = 0.0
) -> float:
    total = seconds + 60 * minutes + 3600 * hours + 86400 * days
    if not math.isfinite(total) or total <= 0:
        raise ValueError(
            f"A {what} must be longer than zero, got {total!r} seconds: "
            f"give a positive length, for example {what.split()[0].title()}(seconds=1)."
        )
    return float(total)


@dataclass(frozen=True, init=False)
class Tumbling:
    """Back-to-back windows of one fixed length: ``[0, 1s), [1s, 2s)``... (epoch-aligned)."""

    size: float

    def __init__(
        self, *, seconds: float = 0, minutes: float = 0, hours: float = 0, days: float = 0
    ) -> None:
        size = _seconds("tumbling window", seconds=seconds, minutes=minutes, hours=hours, days=days)
        object.__setattr__(self, "size", size)

    def windows(self, ts: float) -> list[tuple[float, float]]:
        start = math.floor(ts / self.size) * self.size
        return [(start, start + self.size)]

    def describe(self) -> dict[str, Any]:
        return {"type": "tumbling", "size": self.size}


@dataclass(frozen=True, init=False)
class Hopping:
    """Overlapping windows of length ``size`` starting every ``every`` (a moving average).

    An event belongs to ``size / every`` windows (rounded up), so memory grows with that
    ratio: ``Hopping(minutes=5, every_seconds=60)`` keeps five windows per key open.
    """

    size: float
    every: float

    def __init__(
        self,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        every_seconds: float = 0,
        every_minutes: float = 0,
        every_hours: float = 0,
    ) -> None:
        size = _seconds("hopping window", seconds=seconds, minutes=minutes, hours=hours)
        every = _seconds(
            "hopping window step",
            seconds=every_seconds,
            minutes=every_minutes,
            hours=every_hours,
        )
        if every > size:
            raise ValueError(
                f"A hopping window's step ({every}s) is longer than the window ({size}s), so "
                "some events would fall in no window: make the step at most the window length "
                "(equal is a tumbling window)."
            )
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "every", every)

    def windows(self, ts: float) -> list[tuple[float, float]]:
        last_start = math.floor(ts / self.every) * self.every
        found = []
        start = last_start
        while start > ts - self.size:
            found.append((start, start + self.size))
            start -= self.every
        found.reverse()
        return found

    def describe(self) -> dict[str, Any]:
        return {"type": "hopping", "size": self.size, "every": self.every}


@dataclass(frozen=True, init=False)
class Session:
    """A key's burst of activity: it ends when no event comes for ``gap``."""

    gap: float

    def __init__(self, *, seconds: float = 0, minutes: float = 0, hours: float = 0) -> None:
        object.__setattr__(
            self, "gap", _seconds("session gap", seconds=seconds, minutes=minutes, hours=hours)
        )

    def describe(self) -> dict[str, Any]:
        return {"type": "session", "gap": self.gap}


@dataclass(frozen=True)
class CountWindow:
    """Every ``size`` events of a key form one window, whatever their times."""

    size: int

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size <= 0:
            raise ValueError(
                f"A count window must hold at least one event, got {self.size!r}: "
                "give a positive whole number, for example CountWindow(100)."
            )

    def describe(self) -> dict[str, Any]:
        return {"type": "count", "size": self.size}


#: Any window a derived topic may aggregate over.
WindowSpec = Tumbling | Hopping | Session | CountWindow
