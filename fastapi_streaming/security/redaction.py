"""Keep access tokens out of logs.

A token in the ``access_token`` query parameter is part of the URL, and servers log URLs:
uvicorn's access log (``uvicorn.access``) and its WebSocket lines (``uvicorn.error``) would
write a working credential into every log file and log shipper. :class:`RedactTokens` rewrites
such records before any handler formats them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

#: The loggers that write request URLs: uvicorn's, and this package's own.
LOGGERS = ("uvicorn.access", "uvicorn.error", "fastapi_streaming")
REDACTED = "[redacted]"
_TOKEN = re.compile(r"((?:^|[?&;\s\"'])access_token=)[^&;#\s\"']*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the value of every ``access_token=`` parameter replaced."""
    return _TOKEN.sub(lambda match: match.group(1) + REDACTED, text)


class RedactTokens(logging.Filter):
    """A logging filter that removes ``access_token`` values from messages and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "access_token" in record.msg:
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_clean(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _clean(value) for key, value in record.args.items()}
        return True


def _clean(value: Any) -> Any:
    if isinstance(value, str) and "access_token" in value:
        return redact(value)
    return value


def install_redaction(loggers: Iterable[str] = LOGGERS) -> None:
    """Add the filter to ``loggers`` (once each; calling again is harmless).

    Filters on a logger see the records logged to that very logger, which is where uvicorn
    logs requests; logging configuration applied later (``dictConfig``) keeps them.
    """
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactTokens) for existing in logger.filters):
            logger.addFilter(RedactTokens())
