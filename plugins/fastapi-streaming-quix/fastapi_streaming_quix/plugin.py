"""The entry point fastapi-streaming loads: the ``quix`` processing engine."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi_streaming import hookimpl
from fastapi_streaming.processing import EngineFactory

from .engine import create


@hookimpl
def fastapi_streaming_processing_engines() -> Mapping[str, EngineFactory]:
    return {"quix": create}
