"""The entry point fastapi-streaming loads: the ``quix`` processing engine.

The hook is optional and the engine is imported only when asked for, so a fastapi-streaming
without processing engines (which has no such hook) loads this entry point and ignores it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from fastapi_streaming import hookimpl

if TYPE_CHECKING:
    from fastapi_streaming.processing import EngineContext, EngineFactory, ProcessingEngine


def create(context: EngineContext) -> ProcessingEngine:
    """Import Quix Streams only now: every app asks the hook for the engines' names at
    startup, and most never pick this one."""
    from .engine import create as create_quix_engine

    return create_quix_engine(context)


@hookimpl(optionalhook=True)
def fastapi_streaming_processing_engines() -> Mapping[str, EngineFactory]:
    return {"quix": create}
