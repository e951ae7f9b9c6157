"""Stream processing: derived topics computed from other topics, once per deployment.

Declare one with ``@router.derive(...)`` (or ``@streaming.derive``); this package holds what
it is built from (windows, aggregates, the :class:`Window` a handler receives) and what runs
it (the engine, the pipelines, the lease that elects one owner per deployment), and the
boundary an engine on another stream processor implements (:mod:`.engines`).
"""

from .aggregates import Aggregate, Count, First, Last, Max, Mean, Min, Reduce, Sum
from .declaration import Derivation, Window
from .engines import (
    DerivedTopic,
    EngineContext,
    EngineFactory,
    ProcessingEngine,
    UnknownEngineError,
    UnsupportedDeclarationError,
)
from .windows import CountWindow, Hopping, Session, Tumbling

__all__ = [
    "Aggregate",
    "Count",
    "CountWindow",
    "Derivation",
    "DerivedTopic",
    "EngineContext",
    "EngineFactory",
    "First",
    "Hopping",
    "Last",
    "Max",
    "Mean",
    "Min",
    "ProcessingEngine",
    "Reduce",
    "Session",
    "Sum",
    "Tumbling",
    "UnknownEngineError",
    "UnsupportedDeclarationError",
    "Window",
]
