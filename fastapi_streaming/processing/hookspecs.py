"""The plugin hook for processing engines, in the ``fastapi_streaming`` pluggy project.

An engine plugin computes derived topics on an existing stream processor instead of the
embedded engine. Installing one changes nothing by itself: an app picks its engine by name
(``StreamingAPI(processing_engine="quix")``), so the same declarations run on either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..hooks import hookspec

if TYPE_CHECKING:
    from .engines import EngineFactory


@hookspec
def fastapi_streaming_processing_engines() -> Mapping[str, EngineFactory]:  # type: ignore[empty-body]
    """Return the processing engines this plugin provides, keyed by name (``"quix"``).

    Each value is called with an :class:`~fastapi_streaming.processing.engines.EngineContext`
    (the derived topics, the topic registry, the runtime and the broker URL) when the API
    starts, and returns a :class:`~fastapi_streaming.processing.engines.ProcessingEngine`: an
    ``owned`` collection and async ``start()`` and ``stop()``. An engine that cannot compute a
    declaration raises :class:`~fastapi_streaming.processing.engines.UnsupportedDeclarationError`
    from the factory, saying what to change.
    """
