"""Incremental aggregation: each event updates a small accumulator, and is then forgotten.

An :class:`Aggregate` has an initial value, a step that folds one event in, and a result. The
engine keeps one accumulator per key and open window, so memory grows with keys x windows and
never with events. :class:`Reduce` wraps a function of your own; the others are built in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

A = TypeVar("A")
R = TypeVar("R", covariant=True)

#: Where an aggregate finds its number in an event: a field name, a function, or the event.
Field = str | Callable[[Any], Any] | None


def pick(event: Any, field: Field) -> Any:
    """The value of ``field`` in ``event`` (a mapping key or an attribute)."""
    if field is None:
        return event
    if callable(field):
        return field(event)
    if isinstance(event, dict):
        return event[field]
    return getattr(event, field)


class Aggregate(Protocol[A, R]):
    """What a window accumulates: ``initial()``, ``add(acc, event)`` and ``result(acc)``."""

    def initial(self) -> A: ...

    def add(self, accumulator: A, event: Any) -> A: ...

    def result(self, accumulator: A) -> R: ...


def _describe(kind: str, field: Field) -> dict[str, Any]:
    described: dict[str, Any] = {"type": kind}
    if isinstance(field, str):
        described["field"] = field
    return described


@dataclass(frozen=True)
class Count:
    """How many events the window holds."""

    def initial(self) -> int:
        return 0

    def add(self, accumulator: int, event: Any) -> int:
        return accumulator + 1

    def result(self, accumulator: int) -> int:
        return accumulator

    def describe(self) -> dict[str, Any]:
        return {"type": "count"}


@dataclass(frozen=True)
class Sum:
    field: Field = None

    def initial(self) -> float:
        return 0

    def add(self, accumulator: float, event: Any) -> float:
        total: float = accumulator + pick(event, self.field)
        return total

    def result(self, accumulator: float) -> float:
        return accumulator

    def describe(self) -> dict[str, Any]:
        return _describe("sum", self.field)


@dataclass(frozen=True)
class Min:
    field: Field = None

    def initial(self) -> Any:
        return None

    def add(self, accumulator: Any, event: Any) -> Any:
        value = pick(event, self.field)
        return value if accumulator is None or value < accumulator else accumulator

    def result(self, accumulator: Any) -> Any:
        return accumulator

    def describe(self) -> dict[str, Any]:
        return _describe("min", self.field)


@dataclass(frozen=True)
class Max:
    field: Field = None

    def initial(self) -> Any:
        return None

    def add(self, accumulator: Any, event: Any) -> Any:
        value = pick(event, self.field)
        return value if accumulator is None or value > accumulator else accumulator

    def result(self, accumulator: Any) -> Any:
        return accumulator

    def describe(self) -> dict[str, Any]:
        return _describe("max", self.field)


@dataclass(frozen=True)
class Mean:
    """The arithmetic mean (kept as a running sum and count)."""

    field: Field = None

    def initial(self) -> tuple[float, int]:
        return (0.0, 0)

    def add(self, accumulator: tuple[float, int], event: Any) -> tuple[float, int]:
        return (accumulator[0] + pick(event, self.field), accumulator[1] + 1)

    def result(self, accumulator: tuple[float, int]) -> float | None:
        return accumulator[0] / accumulator[1] if accumulator[1] else None

    def describe(self) -> dict[str, Any]:
        return _describe("mean", self.field)


_NOTHING: Any = object()


@dataclass(frozen=True)
class First:
    """The value of the first event to arrive in the window."""

    field: Field = None

    def initial(self) -> Any:
        return _NOTHING

    def add(self, accumulator: Any, event: Any) -> Any:
        return pick(event, self.field) if accumulator is _NOTHING else accumulator

    def result(self, accumulator: Any) -> Any:
        return None if accumulator is _NOTHING else accumulator

    def describe(self) -> dict[str, Any]:
        return _describe("first", self.field)


@dataclass(frozen=True)
class Last:
    """The value of the last event to arrive in the window."""

    field: Field = None

    def initial(self) -> Any:
        return None

    def add(self, accumulator: Any, event: Any) -> Any:
        return pick(event, self.field)

    def result(self, accumulator: Any) -> Any:
        return accumulator

    def describe(self) -> dict[str, Any]:
        return _describe("last", self.field)


T = TypeVar("T")


@dataclass(frozen=True)
class Reduce(Generic[T]):
    """A reducer of your own: ``function(accumulator, event) -> accumulator``.

    ``initial`` is copied for every window through ``factory`` when given (use it for mutable
    starting values such as ``dict``); the function should return a new value rather than
    change the old one, so a failing step leaves the window as it was.
    """

    function: Callable[[T, Any], T]
    initial_value: T | None = None
    factory: Callable[[], T] | None = None

    def initial(self) -> T:
        if self.factory is not None:
            return self.factory()
        return self.initial_value  # type: ignore[return-value]

    def add(self, accumulator: T, event: Any) -> T:
        return self.function(accumulator, event)

    def result(self, accumulator: T) -> T:
        return accumulator

    def describe(self) -> dict[str, Any]:
        return {"type": "reduce", "function": getattr(self.function, "__qualname__", "?")}
