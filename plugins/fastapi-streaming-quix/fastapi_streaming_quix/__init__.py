"""A processing engine for fastapi-streaming: derived topics computed by Quix Streams on Kafka.

Install it and pick it by name: ``StreamingAPI(broker="kafka://...", processing_engine="quix")``.
The derived topics are declared exactly as for the embedded engine.
"""

from __future__ import annotations

from .engine import QuixEngine
from .topics import RetentionDefaultingTopicManager

__version__ = "0.1.0"

__all__ = ["QuixEngine", "RetentionDefaultingTopicManager", "__version__"]
