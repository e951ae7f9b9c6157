"""The public API changes only on purpose: this list is the contract."""

from __future__ import annotations

import fastapi_streaming


def test_exported_members() -> None:
    assert sorted(fastapi_streaming.__all__) == sorted(
        [
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
    )
    for name in fastapi_streaming.__all__:
        assert hasattr(fastapi_streaming, name), name
