"""The AsyncAPI versions fastapi-streaming writes and reads."""

from __future__ import annotations

#: Written on request; the first is the default.
SUPPORTED_VERSIONS = ("3.0.0", "3.1.0", "2.6.0")
DEFAULT_VERSION = SUPPORTED_VERSIONS[0]


class UnsupportedVersionError(ValueError):
    """An AsyncAPI version that fastapi-streaming cannot write."""


def check_version(version: str) -> str:
    """Return ``version`` if a document of that version can be written, or raise."""
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersionError(
            f"AsyncAPI version {version!r} is not supported; "
            f"use one of {', '.join(SUPPORTED_VERSIONS)}."
        )
    return version
