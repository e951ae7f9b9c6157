"""A processing engine for fastapi-streaming: derived topics computed by Quix Streams on Kafka.

Install it and pick it by name: ``StreamingAPI(broker="kafka://...", processing_engine="quix")``.
The derived topics are declared exactly as for the embedded engine. The engine's modules are
imported when first used, so loading the entry point costs nothing (and imports no Quix
Streams) in an app that does not use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .engine import QuixEngine
    from .topics import RetentionDefaultingTopicManager


def __getattr__(name: str) -> Any:
    if name == "QuixEngine":
        from .engine import QuixEngine

        return QuixEngine
    if name == "RetentionDefaultingTopicManager":
        from .topics import RetentionDefaultingTopicManager

        return RetentionDefaultingTopicManager
    raise AttributeError(name)


__all__ = ["QuixEngine", "RetentionDefaultingTopicManager", "__version__"]
