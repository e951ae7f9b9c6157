"""The entry point fastapi-streaming loads: the ``quix`` processing engine.

The hook is optional and the engine is imported only when asked for, so a fastapi-streaming
without processing engines (which has no such hook) loads this entry point and ignores it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from fastapi_streaming import hookimpl

if TYPE_CHECKING:
    from fastapi_streaming.processing import EngineFactory


@hookimpl(optionalhook=True)
def fastapi_streaming_processing_engines() -> Mapping[str, EngineFactory]:
    from .engine import create

    return {"quix": create}
