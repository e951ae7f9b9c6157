"""Streaming APIs for FastAPI: topics over WebSocket, SSE, WebSub and HTTP, on any broker."""

from .analytics import Analytics, UsageRecord, UsageTotal, summarize
from .api import NotRunningError, StreamingAPI
from .console.settings import ConsoleSettings
from .dependencies import HandlerDefinitionError
from .errors import (
    Forbidden,
    InvalidPayload,
    MalformedMessage,
    ModeNotAllowed,
    PayloadTooLarge,
    StreamingError,
    TopicNotFound,
    Unauthorized,
    Unavailable,
)
from .events import Event
from .hooks import hookimpl
from .routing import StreamingRouter
from .topics import Mode, OverflowPolicy, Topic
from .websub.settings import WebSubSettings

__version__ = "0.1.0"

__all__ = [
    "Analytics",
    "ConsoleSettings",
    "Event",
    "Forbidden",
    "HandlerDefinitionError",
    "InvalidPayload",
    "MalformedMessage",
    "Mode",
    "ModeNotAllowed",
    "NotRunningError",
    "OverflowPolicy",
    "PayloadTooLarge",
    "StreamingAPI",
    "StreamingError",
    "StreamingRouter",
    "Topic",
    "TopicNotFound",
    "Unauthorized",
    "Unavailable",
    "UsageRecord",
    "UsageTotal",
    "WebSubSettings",
    "__version__",
    "hookimpl",
    "summarize",
]
