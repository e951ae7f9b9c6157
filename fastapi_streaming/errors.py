"""The errors a client can cause, each with the answer every transport gives for it.

HTTP transports answer with the status code and a FastAPI-style ``{"detail": ...}`` body;
sockets send an ``error`` message with the same ``code`` and ``detail`` and stay open, except
where the wire contract says the connection ends (an oversized frame closes with 1009).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class StreamingError(Exception):
    """An error answered to one client; it never affects any other client."""

    status_code = 400
    error = "bad_request"

    def __init__(
        self,
        detail: Any,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})

    def to_message(self, request_id: Any = None) -> dict[str, Any]:
        """The ``error`` message sent over a WebSocket."""
        message: dict[str, Any] = {"type": "error"}
        if request_id is not None:
            message["id"] = request_id
        message.update(code=self.status_code, error=self.error, detail=self.detail)
        return message


class MalformedMessage(StreamingError):
    status_code = 400
    error = "malformed"


class Unauthorized(StreamingError):
    status_code = 401
    error = "invalid_token"


class Forbidden(StreamingError):
    status_code = 403
    error = "insufficient_scope"


class TopicNotFound(StreamingError):
    status_code = 404
    error = "unknown_topic"

    def __init__(self, address: str) -> None:
        super().__init__(f"No topic at address {address!r}.")


class ModeNotAllowed(StreamingError):
    status_code = 405
    error = "mode_not_allowed"

    def __init__(self, address: str, mode: str, allowed: Sequence[str]) -> None:
        super().__init__(
            f"Topic {address!r} does not accept {mode}; it allows: {', '.join(allowed) or 'none'}.",
            headers={"Allow": "POST" if "publish" in allowed else ""},
        )
        self.allowed = tuple(allowed)


class PayloadTooLarge(StreamingError):
    status_code = 413
    error = "payload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The event is larger than the limit of {limit} bytes.")
        self.limit = limit


class InvalidPayload(StreamingError):
    status_code = 422
    error = "invalid_payload"


class Unavailable(StreamingError):
    status_code = 503
    error = "unavailable"
