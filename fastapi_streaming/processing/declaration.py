"""A derived topic as declared: its sources, window, aggregate, time, and the handler.

:class:`Derivation` is what ``@router.derive(...)`` records next to the derived topic's
subscribe operation. Everything that can be checked from the declaration alone is checked
here, with a message that says what to change; what needs the other topics (does the source
exist? is there a cycle?) is checked when the declarations meet in the API's registry.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar, get_origin, get_type_hints

from pydantic import TypeAdapter
from starlette.routing import compile_path

from .aggregates import Aggregate, Count
from .engine import EmitPolicy, LatePolicy
from .timing import TimeSpec
from .windows import CountWindow, WindowSpec

R = TypeVar("R")


@dataclass(frozen=True)
class Window(Generic[R]):
    """A window's result, as a windowed derive handler receives it.

    ``start`` and ``end`` are epoch seconds (a count window's are its first and last event
    times); ``value`` is the aggregate; ``key`` holds the key's values by name.
    """

    start: float
    end: float
    value: R
    key: dict[str, Any]
    events: int
    final: bool = True
    revision: int = 0


@dataclass(frozen=True)
class HandlerShape:
    """How to call a derive handler: which argument gets what."""

    call: Callable[..., Any]
    is_async: bool
    window_param: str | None
    event_param: str | None
    event_adapter: TypeAdapter[Any] | None
    key_params: tuple[str, ...]
    returns: Any


@dataclass(frozen=True)
class Derivation:
    """What computes a derived topic (see ``StreamingRouter.derive`` for the arguments)."""

    sources: tuple[str, ...]
    handler: Callable[..., Any]
    window: WindowSpec | None = None
    aggregate: Aggregate[Any, Any] | None = None
    time: TimeSpec = None
    key: str | None = None
    allowed_lateness: float = 0.0
    late: LatePolicy = "drop"
    emit: EmitPolicy = "final"
    min_interval: float = 0.0
    idle: float | None = 2.0
    #: Key partitions the work is split into across the deployment's processes (1: one owner).
    partitions: int = 1
    shape: HandlerShape = field(init=False, repr=False, compare=False)

    @property
    def windowed(self) -> bool:
        return self.window is not None

    def check(self, address: str) -> Derivation:
        """Check the declaration of the derived topic ``address``; returns it, ready to run."""
        where = f"Derived topic {address!r}"
        if not self.sources:
            raise ValueError(f"{where} needs at least one source: source='/some/topic'.")
        if address in self.sources:
            raise ValueError(f"{where} is its own source, a cycle: derive it from another topic.")
        if self.window is None and self.aggregate is not None:
            raise ValueError(
                f"{where} has an aggregate but no window: add window=Tumbling(seconds=...) "
                "(or another window), or drop the aggregate for a plain filter/map."
            )
        if self.window is None and (self.allowed_lateness or self.emit != "final"):
            raise ValueError(
                f"{where}: allowed_lateness and emit apply to windows only; add a window."
            )
        if self.min_interval < 0 or (self.idle is not None and self.idle <= 0):
            raise ValueError(f"{where}: min_interval must be >= 0 and idle > 0 (or None).")
        if isinstance(self.window, CountWindow) and self.late != "drop":
            raise ValueError(f"{where}: count windows have no lateness; leave late='drop'.")
        own = parameters(address)
        self._check_partitions(where, own)
        for source in self.sources:
            available = set(parameters(source)) | ({self.key} if self.key else set())
            missing = [name for name in own if name not in available]
            if missing:
                raise ValueError(
                    f"{where} has parameters {missing} that its source {source!r} does not "
                    "have: every parameter of a derived topic must be a parameter of each "
                    "source (or its key= field)."
                )
        aggregate = self.aggregate
        if self.window is not None and aggregate is None:
            aggregate = Count()
        checked = replace(self, aggregate=aggregate)
        if self.window is not None:
            names = own + ((self.key,) if self.key and self.key not in own else ())
        else:
            names = _common_parameters(self.sources)
        object.__setattr__(checked, "shape", shape_of(self.handler, names, self.windowed, where))
        return checked

    def _check_partitions(self, where: str, own: tuple[str, ...]) -> None:
        """Partitions split the work by key, and a process must find an entry's partition
        from the stream it is on: so every key name must be an address parameter of every
        source (a key read from the payload would need the entries copied into partition
        streams first, which is not done).
        """
        if not isinstance(self.partitions, int) or self.partitions < 1:
            raise ValueError(f"{where}: partitions must be a whole number of at least 1.")
        if self.partitions == 1 or self.window is None:
            return  # a filter/map keeps no state: its streams are split as they are
        names = own + ((self.key,) if self.key and self.key not in own else ())
        for source in self.sources:
            missing = [name for name in names if name not in parameters(source)]
            if missing:
                raise ValueError(
                    f"{where} is split into {self.partitions} partitions by its key, but the "
                    f"key {missing} is not a parameter of its source {source!r}: key by "
                    "parameters of the source's address (for example key='page' for "
                    "'/clicks/{page}'), or leave partitions=1."
                )

    def under(self, prefix: str) -> Derivation:
        """The same derivation seen through a router with ``prefix``: its sources are prefixed
        as its own address is (sources are addresses of the same router).
        """
        if not prefix:
            return self
        moved = replace(self, sources=tuple(_join(prefix, source) for source in self.sources))
        object.__setattr__(moved, "shape", self.shape)
        return moved

    def describe(self) -> dict[str, Any]:
        """What the AsyncAPI document says of it (the ``derivedFrom`` extension)."""
        described: dict[str, Any] = {"sources": list(self.sources)}
        if self.window is not None:
            described["window"] = self.window.describe()
            describe = getattr(self.aggregate, "describe", None)
            if describe is not None:
                described["aggregate"] = describe()
            described["time"] = (
                self.time
                if isinstance(self.time, str)
                else ("processing" if self.time is None else "function")
            )
            described["emit"] = self.emit
            described["allowedLateness"] = self.allowed_lateness
            described["late"] = self.late
        if self.key:
            described["key"] = self.key
        if self.partitions > 1:
            described["partitions"] = self.partitions
        return described


def parameters(address: str) -> tuple[str, ...]:
    return tuple(compile_path(address)[2])


def _common_parameters(sources: Sequence[str]) -> tuple[str, ...]:
    common = [name for name in parameters(sources[0])]
    for source in sources[1:]:
        common = [name for name in common if name in parameters(source)]
    return tuple(common)


def _join(prefix: str, address: str) -> str:
    return prefix if address == "/" else prefix + address


def shape_of(
    handler: Callable[..., Any], names: Sequence[str], windowed: bool, where: str
) -> HandlerShape:
    """Work out once which argument of ``handler`` is the window, the event, or a parameter.

    A windowed handler takes a :class:`Window` and any of ``names`` (the derived topic's
    parameters); a filter/map handler takes the event (any type pydantic validates) and any of
    ``names`` (the parameters all its sources share).
    """
    qualname = getattr(handler, "__qualname__", repr(handler))
    try:
        hints = get_type_hints(handler, include_extras=True)
    except Exception:
        hints = {}
    window_param = event_param = None
    event_adapter = None
    key_params: list[str] = []
    for name, parameter in inspect.signature(handler).parameters.items():
        annotation = hints.get(name, Any)
        if annotation is Window or get_origin(annotation) is Window:
            if not windowed:
                raise ValueError(
                    f"{where}: handler {qualname!r} asks for a Window, but the topic has no "
                    "window: add window=Tumbling(seconds=...) or take the event instead."
                )
            window_param = name
        elif name in names:
            key_params.append(name)
        elif not windowed and event_param is None:
            event_param = name
            event_adapter = TypeAdapter(annotation)
        elif parameter.default is inspect.Parameter.empty:
            offered = "a Window" if windowed else "the event"
            raise ValueError(
                f"{where}: handler {qualname!r} has a parameter {name!r} it cannot be given; "
                f"it may take {offered} and the parameters {list(names)}."
            )
    if windowed and window_param is None:
        raise ValueError(
            f"{where}: handler {qualname!r} must take the window's result: add a parameter "
            "annotated Window[...] (for example `window: Window[int]`)."
        )
    returns = hints.get("return", Any)
    return HandlerShape(
        call=handler,
        is_async=inspect.iscoroutinefunction(handler),
        window_param=window_param,
        event_param=event_param,
        event_adapter=event_adapter,
        key_params=tuple(key_params),
        returns=_without_none(returns),
    )


def _without_none(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if args and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return rest[0] if len(rest) == 1 else Any
    if annotation is type(None):
        return Any
    return annotation
