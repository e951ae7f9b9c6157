"""The embedded engine, registered through the same hook as engine plugins."""

from __future__ import annotations

from collections.abc import Mapping

from ..hooks import hookimpl
from .engines import DEFAULT_ENGINE, EngineContext, EngineFactory, ProcessingEngine


def embedded(context: EngineContext) -> ProcessingEngine:
    """Derived topics computed in the API's processes, one owner per topic under a lease."""
    from .runner import Processing

    return Processing(context.topics, context.runtime, broker_url=context.broker_url)


@hookimpl
def fastapi_streaming_processing_engines() -> Mapping[str, EngineFactory]:
    return {DEFAULT_ENGINE: embedded}
