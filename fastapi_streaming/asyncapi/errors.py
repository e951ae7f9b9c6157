"""The error of a document that cannot become a streaming API."""

from __future__ import annotations

from collections.abc import Iterable


class AsyncAPIImportError(ValueError):
    """The document is invalid, or uses something fastapi-streaming does not support.

    ``pointer`` is the JSON pointer (RFC 6901) of the offending part, such as
    ``/channels/quotes/messages/Quote/payload``.
    """

    def __init__(self, pointer: str, message: str) -> None:
        self.pointer = pointer or "/"
        self.reason = message
        super().__init__(f"{self.pointer}: {message}")


def pointer(parts: Iterable[str | int]) -> str:
    """A JSON pointer from the keys and indexes that lead to a value."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)
