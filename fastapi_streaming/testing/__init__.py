"""Test helpers for fastapi-streaming and its broker plugins; imported by test code only.

``stream_events`` reads a Server-Sent Events topic in process beside FastAPI's ``TestClient``
(which already drives HTTP publish and WebSockets). ``BackendConformance`` is the suite every
broker backend passes against its real server: a plugin's tests subclass it (see
:mod:`fastapi_streaming.testing.conformance`), or ``InProcessConformance`` for a backend that
is its own broker inside the process. Importing ``fastapi_streaming`` never imports this
package, so applications do not need pytest.
"""

from __future__ import annotations

try:
    import pytest  # noqa: F401
    import pytest_asyncio  # noqa: F401
except ImportError as missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fastapi_streaming.testing needs pytest and pytest-asyncio: "
        "pip install 'fastapi-streaming[testing]'"
    ) from missing

from fastapi_streaming.testing.conformance import (
    UNICODE_PAYLOADS,
    BackendConformance,
    BrokerControl,
    Connected,
    NativePublish,
    OpenBackend,
)
from fastapi_streaming.testing.in_process import InProcessConformance
from fastapi_streaming.testing.inbox import BackendFailed, Inbox
from fastapi_streaming.testing.sse import EventStream, ServerSentEvent, stream_events

__all__ = [
    "UNICODE_PAYLOADS",
    "BackendConformance",
    "BackendFailed",
    "BrokerControl",
    "Connected",
    "EventStream",
    "InProcessConformance",
    "Inbox",
    "NativePublish",
    "OpenBackend",
    "ServerSentEvent",
    "stream_events",
]
